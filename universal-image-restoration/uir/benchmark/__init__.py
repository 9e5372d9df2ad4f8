"""uir.benchmark: the reference-style evaluation path against the fast path (`scripts/benchmark.py`).

- `paths`: the two paths (DA-CLIP, sampling through `Restorer`, metrics), `run_path`.
- `speed`: `run_benchmark`, both paths at every size and sampler, with random weights.
- `quality`: `run_quality`, the fast path's per-task PSNR / SSIM against float32 on a test set.
- `report`: the `Report`, its Markdown and JSON; `profiling`: timers, FLOP counts, peak memory.
- `cli`: the command line (`main`).
"""
from uir.benchmark.cli import main, parse_args, resolve_settings
from uir.benchmark.paths import (
    PathRun, PathSetup, Sample, fast_contexts, fast_metrics, pil_clip_transform, random_samples, reference_contexts,
    reference_metrics, run_path, task_samples,
)
from uir.benchmark.quality import run_quality
from uir.benchmark.report import (
    QUALITY_COLUMNS, SPEED_COLUMNS, WARMUP_COLUMNS, Report, render_markdown, section_markers, write_markdown,
    write_outputs,
)
from uir.benchmark.settings import NETWORKS, REFERENCE_MRSAMPLER_BLOCK, Settings, sweep_points
from uir.benchmark.speed import Paths, build_paths, run_benchmark

__all__ = [
    "main", "parse_args", "resolve_settings", "PathRun", "PathSetup", "Sample", "fast_contexts", "fast_metrics",
    "pil_clip_transform", "random_samples", "reference_contexts", "reference_metrics", "run_path", "task_samples",
    "run_quality", "QUALITY_COLUMNS", "SPEED_COLUMNS", "WARMUP_COLUMNS", "Report", "render_markdown",
    "section_markers", "write_markdown", "write_outputs", "NETWORKS", "REFERENCE_MRSAMPLER_BLOCK",
    "Settings", "sweep_points", "Paths", "build_paths", "run_benchmark",
]
