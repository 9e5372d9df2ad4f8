"""A benchmark's results: the `Report`, its Markdown (the tables rendered by
`uir.evaluation.tables.to_markdown`) and JSON, and the update of a Markdown section between
``<!-- benchmark:SECTION:begin -->`` / ``... :end -->`` markers."""
from __future__ import annotations

import json
import platform
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from uir.evaluation.tables import to_markdown
from uir.runtime import describe_device

Columns = Sequence[tuple[str, str, str]]  # (row key, column title, str.format pattern)

SPEED_COLUMNS: Columns = (
    ("path", "path", "{}"), ("sampler", "sampler", "{}"), ("size", "size", "{}"), ("nfe", "NFE", "{}"),
    ("images", "images", "{}"), ("batch", "batch", "{}"), ("images_per_s", "img/s", "{:.3g}"),
    ("s_per_image", "s/img", "{:.3g}"), ("sampling_s_per_image", "sampling s/img", "{:.3g}"),
    ("daclip_s_per_image", "DA-CLIP s/img", "{:.3g}"), ("metrics_s_per_image", "metrics s/img", "{:.3g}"),
    ("network_share", "net share", "{:.0%}"), ("network_ms_per_image_eval", "net ms/img/eval", "{:.3g}"),
    ("gflop_per_image_eval", "GFLOP/img/eval", "{:.4g}"), ("tflops", "TFLOP/s", "{:.3g}"),
    ("peak_gib", "peak GiB", "{:.2f}"), ("speedup", "speed-up", "{:.2f}x"),
    ("max_abs_diff", "max abs diff", "{:.1e}"), ("max_psnr_diff", "max dPSNR", "{:.1e}"),
)
WARMUP_COLUMNS: Columns = (("path", "path", "{}"), ("size", "size", "{}"), ("batch_shapes", "batch shapes", "{}"),
                           ("warmup_s", "warm-up s (incl. compile)", "{:.3g}"))
QUALITY_COLUMNS: Columns = (
    ("task", "task", "{}"), ("sampler", "sampler", "{}"), ("nfe", "NFE", "{}"), ("precision", "precision", "{}"),
    ("images", "images", "{}"), ("psnr_fp32", "PSNR fp32", "{:.4f}"), ("psnr_fast", "PSNR fast", "{:.4f}"),
    ("d_psnr", "dPSNR", "{:+.4f}"), ("mean_abs_d_psnr", "mean abs dPSNR", "{:.4f}"),
    ("max_abs_d_psnr", "max abs dPSNR", "{:.4f}"),
    ("ssim_fp32", "SSIM fp32", "{:.5f}"), ("ssim_fast", "SSIM fast", "{:.5f}"), ("d_ssim", "dSSIM", "{:+.5f}"),
    ("d_psnr_y", "dPSNR-Y", "{:+.4f}"), ("d_ssim_y", "dSSIM-Y", "{:+.5f}"), ("within", "within tol.", "{}"),
)


@dataclass
class Report:
    environment: dict[str, Any]
    settings: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    warmup: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment(device: torch.device, argv: Sequence[str] | None, script: str = "scripts/benchmark.py") -> dict[str, Any]:
    """The machine, versions, date and command line (`script` and `argv`) of a run."""
    return {
        "device": describe_device(device) if device.type == "cuda" else f"cpu: {cpu_name()} ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"python {script} " + shlex.join(list(sys.argv[1:] if argv is None else argv)),
    }


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Columns) -> str:
    return to_markdown(rows, [key for key, _, _ in columns], titles={key: title for key, title, _ in columns},
                       formats={key: fmt for key, _, fmt in columns})


def describe_settings(report: Report, quality: bool) -> list[str]:
    s = report.settings
    if quality:
        return [f"- options: `{s['options']}`; fast path: precision {s['precision']}, channels_last "
                f"{s['channels_last']}, compile {s['compile']}, batch size {s['batch_size']}; tolerance: mean "
                f"|dPSNR| over a task's images <= {s['tolerance_psnr']} dB, each <= {s['tolerance_psnr_max']} dB, "
                f"|dSSIM| <= {s['tolerance_ssim']}"]
    network = s["network_setting"]
    daclip = s["daclip_config"] if isinstance(s["daclip_config"], str) else "tiny"
    return [
        f"- network: `{s['network']}` ConditionalUNet(nf={network['nf']}, ch_mult={network['ch_mult']}, "
        f"context_dim={network['context_dim']}), DA-CLIP `{daclip}`, random weights (seed {s['seed']})",
        f"- images: {s['images']} per size for the fast path, the first {s['ref_images']} of them for the "
        f"reference path; crop border {s['crop_border']}",
        f"- fast path: batch size {s['batch_size']}, {s['precision']} autocast, channels_last "
        f"{s['channels_last']}, torch.compile {s['compile']}",
        f"- MR Sampler block: {s['mrsampler_block']}",
    ]


def render_markdown(report: Report, quality: bool) -> str:
    env = report.environment
    lines = [f"Device: {env['device']}; torch {env['torch']}; Python {env['python']}; {env['date']}", "",
             f"Command: `{env['command']}`", "", *describe_settings(report, quality), ""]
    if quality:
        lines.append(markdown_table(report.rows, QUALITY_COLUMNS))
    else:
        lines += [markdown_table(report.rows, SPEED_COLUMNS), "Warm-up (not in the timings above):", "",
                  markdown_table(report.warmup, WARMUP_COLUMNS)]
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines).rstrip() + "\n"


def section_markers(section: str) -> tuple[str, str]:
    return f"<!-- benchmark:{section}:begin -->", f"<!-- benchmark:{section}:end -->"


def write_markdown(path: Path, text: str, section: str) -> None:
    """Write `text` to `path`; when `path` exists, replace only the text between its
    ``<!-- benchmark:SECTION:begin -->`` and ``... :end -->`` markers."""
    begin, end = section_markers(section)
    if not path.exists():
        path.write_text(f"{begin}\n{text}{end}\n")
        return
    old = path.read_text()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(old):
        raise SystemExit(
            f"--out {path}: the file exists but has no '{begin}' ... '{end}' markers for section "
            f"{section!r}; add them where the tables belong, pass --section, or write to a new file"
        )
    path.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", old, count=1))


def write_outputs(report: Report, outs: Sequence[str], section: str, quality: bool) -> None:
    for out in outs:
        path = Path(out)
        if path.suffix == ".json":
            path.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
        elif path.suffix == ".md":
            write_markdown(path, render_markdown(report, quality), section)
        else:
            raise SystemExit(f"--out {out}: expected a .json or .md file")
