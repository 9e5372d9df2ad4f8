"""Speed of the reference-style evaluation path against the fast path, on one machine.

    python scripts/benchmark.py                       # GPU defaults on CUDA, reduced ones on the CPU
    python scripts/benchmark.py --device cuda --sizes 256 512 --nfe 10 20 100 --posterior-nfe 100 \\
        --images 16 --batch-size auto --precision bf16 --channels-last --compile --out results.json
    python scripts/benchmark.py --quality [--options options/demo.yml]   # fast path vs fp32 quality

Both paths restore the same seeded random images with the same randomly initialised
networks (full-size ConditionalUNet and DA-CLIP ViT-B-32 unless `--network` says otherwise):

- reference: what the reference `test.py` does per image: batch 1, float32 network, the CLIP
  transform on the host with PIL (its data loader's), DA-CLIP per image (fp16 autocast on
  CUDA, float32 on the CPU), `tensor2img` and the numpy/OpenCV PSNR / SSIM / PSNR-Y / SSIM-Y
  on the host;
- fast: batches (`--batch-size`, `auto` from free GPU memory), the UNet under autocast
  (`--precision`) and `channels_last`, optionally `torch.compile`, DA-CLIP on the batch, and
  the batched torch metrics on the device; `prepare_network` / `NetworkCall` /
  `ContextEncoder` / `Restorer` from `uir`, as `test.py` runs them.

Both paths use `Restorer.restore` (image i's noise from its own generator, seed + i), so in
float32 they restore the same images.

Rows are per (path, sampler, image size, NFE): images/s end to end, seconds per image in
total and per phase, the network's share of the time, its ms per image and evaluation, its
FLOPs per image and evaluation (FlopCounterMode, once per input shape) and achieved TFLOP/s,
peak CUDA memory, and for the fast path the speed-up over the reference path and how far its
outputs are from the reference path's. Each path is warmed up once per image size (one
batch of each batch shape, 2 sampling steps) before it is timed; the warm-up time, which
includes compilation under `--compile`, is reported on its own. Timing synchronises the
device at every phase boundary; network calls are timed with CUDA events.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torch import Tensor
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

from uir.data import group_by_size, image_size, read_image, read_image_uint8
from uir.evaluation.conditioning import ContextEncoder, daclip_autocast_dtype, load_context_encoder
from uir.evaluation.profiling import PeakMemory, PhaseTimer, ProfiledDenoiser, eager_module
from uir.evaluation.tasks import resolve_tasks
from uir.metrics import LpipsMetric, batch_image_metrics, image_metrics, quantize_to_uint8, to_uint8
from uir.metrics.lpips_metric import unavailable_reason
from uir.models import build_network, load_network
from uir.models.daclip import DaCLIP, build_daclip
from uir.options import load_options, read_yaml
from uir.restoration import Restorer
from uir.runtime import NetworkCall, RuntimeSettings, auto_batch_size, describe_device, prepare_network, resolve_device
from uir.samplers import SamplerConfig, build_sampler
from uir.sde import IRSDE

REPO = Path(__file__).resolve().parents[1]
MRSAMPLER_OPTIONS = REPO / "options" / "mrsampler.yml"
DEMO_OPTIONS = REPO / "options" / "demo.yml"

# The `sampler:` block of the reference's options/mrsampler.yml (MR Sampler ODE-2, data
# prediction of a noise-predicting network); used when options/mrsampler.yml is absent.
REFERENCE_MRSAMPLER_BLOCK = dict(
    solver_type="ode", parameterization="data", order=2, fit_target="noise", lambda_min=-5.0,
    time_schedule="linspace", thresholding=False, threshold_ratio=0.995, threshold_max=1.5, denoise_last=False,
)
# The reference's IR-SDE (max_sigma, T, schedule, eps).
SDE_SETTINGS = (50, 100, "cosine", 0.005)
WARMUP_STEPS = 2
CROP_BORDER = 4

# Network presets: the UNet's `network_G.setting` and the DA-CLIP model config.
TINY_DACLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
}
NETWORKS: dict[str, tuple[dict[str, Any], str | dict[str, Any]]] = {
    "full": (dict(in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], context_dim=512,
                  use_degra_context=True, use_image_context=True), "ViT-B-32"),
    "small": (dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2, 4, 8], context_dim=512,
                   use_degra_context=True, use_image_context=True), "ViT-B-32"),
    "tiny": (dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2], context_dim=32,
                  use_degra_context=True, use_image_context=True), TINY_DACLIP),
}

# Defaults that depend on the device: the full GPU benchmark, and what 2 CPU cores finish in minutes.
DEVICE_DEFAULTS = {
    "cuda": dict(sizes=[256, 512], nfe=[10, 20, 100], posterior_nfe=[100], images=16, ref_images=4,
                 batch_size="auto", channels_last=True),
    "cpu": dict(sizes=[64, 128], nfe=[10, 20], posterior_nfe=[], images=4, ref_images=4,
                batch_size=4, channels_last=False),
}

# (row key, column title, format) of the printed / markdown tables.
SPEED_COLUMNS = (
    ("path", "path", "{}"), ("sampler", "sampler", "{}"), ("size", "size", "{}"), ("nfe", "NFE", "{}"),
    ("images", "images", "{}"), ("batch", "batch", "{}"), ("images_per_s", "img/s", "{:.3g}"),
    ("s_per_image", "s/img", "{:.3g}"), ("sampling_s_per_image", "sampling s/img", "{:.3g}"),
    ("daclip_s_per_image", "DA-CLIP s/img", "{:.3g}"), ("metrics_s_per_image", "metrics s/img", "{:.3g}"),
    ("network_share", "net share", "{:.0%}"), ("network_ms_per_image_eval", "net ms/img/eval", "{:.3g}"),
    ("gflop_per_image_eval", "GFLOP/img/eval", "{:.4g}"), ("tflops", "TFLOP/s", "{:.3g}"),
    ("peak_gib", "peak GiB", "{:.2f}"), ("speedup", "speed-up", "{:.2f}x"),
    ("max_abs_diff", "max abs diff", "{:.1e}"), ("max_psnr_diff", "max dPSNR", "{:.1e}"),
)
WARMUP_COLUMNS = (("path", "path", "{}"), ("size", "size", "{}"), ("batch_shapes", "batch shapes", "{}"),
                  ("warmup_s", "warm-up s (incl. compile)", "{:.3g}"))
QUALITY_COLUMNS = (
    ("task", "task", "{}"), ("sampler", "sampler", "{}"), ("nfe", "NFE", "{}"), ("images", "images", "{}"),
    ("psnr_fp32", "PSNR fp32", "{:.4f}"), ("psnr_fast", "PSNR fast", "{:.4f}"), ("d_psnr", "dPSNR", "{:+.4f}"),
    ("ssim_fp32", "SSIM fp32", "{:.5f}"), ("ssim_fast", "SSIM fast", "{:.5f}"), ("d_ssim", "dSSIM", "{:+.5f}"),
    ("d_psnr_y", "dPSNR-Y", "{:+.4f}"), ("d_ssim_y", "dSSIM-Y", "{:+.5f}"), ("within", "within tol.", "{}"),
)


# ---- images ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One test image on the host: LQ float32 ``[3, H, W]`` in [0, 1], GT uint8 ``[3, H, W]``,
    and the seed of its noise (prior sample and, for stochastic samplers, every step)."""

    lq: Tensor
    gt: Tensor
    seed: int


def random_samples(count: int, size: int, seed: int) -> list[Sample]:
    """Seeded smooth random GT images (bilinear upsampling of an 8x coarser grid) and LQ = GT
    plus Gaussian noise (sigma 0.1)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, max(1, size // 8), max(1, size // 8), generator=g)
    gt01 = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    lq = (gt01 + 0.1 * torch.randn(gt01.shape, generator=g)).clamp(0, 1)
    gt = quantize_to_uint8(gt01)
    return [Sample(lq[i].contiguous(), gt[i].contiguous(), seed + i) for i in range(count)]


# ---- the two paths --------------------------------------------------------------------------

ContextFn = Callable[[Tensor, Tensor], "tuple[Tensor, Tensor] | None"]
MetricsFn = Callable[[Tensor, Tensor], "list[dict[str, float]]"]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def pil_clip_transform(size: int) -> Callable[[Tensor], Tensor]:
    """The reference data loader's CLIP transform, per image on the host: truncation to uint8,
    PIL bicubic resize, centre crop, normalisation (torchvision). `clip_preprocess` computes
    the same values on tensors; this is the reference's way, and its speed."""
    transform = Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size), ToTensor(),
                         Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)])

    def apply(images01: Tensor) -> Tensor:
        pil = [Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for img in images01]
        return torch.stack([transform(img) for img in pil])

    return apply


def reference_contexts(daclip: DaCLIP, device: torch.device) -> ContextFn:
    """The reference's DA-CLIP step: the CLIP transform on the host (its data loader), then
    ``encode_image(control=True)`` on the device, under fp16 autocast on CUDA."""
    dtype = daclip_autocast_dtype("auto", device)
    transform = pil_clip_transform(daclip.image_size)

    def contexts(lq_host: Tensor, lq_device: Tensor) -> tuple[Tensor, Tensor]:
        pixels = transform(lq_host).to(device)
        with torch.no_grad(), _autocast(device, dtype):
            image_context, degra_context = daclip.encode_image(pixels, control=True)
        return image_context.float(), degra_context.float()

    return contexts


def fast_contexts(encoder: ContextEncoder) -> ContextFn:
    """The pipeline's DA-CLIP step: the whole batch, preprocessed on the device."""
    return lambda lq_host, lq_device: encoder(lq_device)


def reference_metrics(crop: int, lpips: LpipsMetric | None) -> MetricsFn:
    """`tensor2img` and the numpy/OpenCV metrics, one image at a time on the host."""

    def metrics(x: Tensor, gt: Tensor) -> list[dict[str, float]]:
        rows = []
        for i in range(x.shape[0]):
            row = image_metrics(to_uint8(x[i]), gt[i].permute(1, 2, 0).numpy(), crop)
            if lpips is not None:
                row["lpips"] = float(lpips(x[i : i + 1], gt[i : i + 1].to(x.device).float() / 255))
            rows.append(row)
        return rows

    return metrics


def fast_metrics(crop: int, lpips: LpipsMetric | None) -> MetricsFn:
    """Quantisation and the batched torch metrics on the device; the uint8 images then go to
    the host, as a run that writes PNGs does."""

    def metrics(x: Tensor, gt: Tensor) -> list[dict[str, float]]:
        out = quantize_to_uint8(x)
        gt_device = gt.to(x.device)
        values = batch_image_metrics(out, gt_device, crop)
        if lpips is not None:
            values["lpips"] = lpips(x, gt_device.float() / 255)
        out.cpu()  # the copy a run makes to write the PNGs
        columns = {name: v.cpu().tolist() for name, v in values.items()}
        return [{name: columns[name][i] for name in columns} for i in range(x.shape[0])]

    return metrics


@dataclass
class PathSetup:
    """How one path runs: its network (profiled), DA-CLIP step, metrics and batch size."""

    name: str
    network: ProfiledDenoiser
    contexts: ContextFn | None
    metrics: MetricsFn
    batch_size: int


@dataclass
class PathRun:
    outputs: list[Tensor]  # float32 [3, H, W] on the host, one per sample
    metrics: list[dict[str, float]]
    phase_seconds: dict[str, float]
    network_seconds: float
    image_evals: int
    flops: int
    peak_bytes: int | None

    @property
    def seconds(self) -> float:
        return sum(self.phase_seconds.values())


def run_path(setup: PathSetup, samples: Sequence[Sample], sampler, sde: IRSDE, device: torch.device) -> PathRun:
    """Restore `samples` (batched by size) and score them, timing each phase."""
    setup.network.reset()
    timer = PhaseTimer(device)
    outputs: list[Tensor | None] = [None] * len(samples)
    metrics: list[dict | None] = [None] * len(samples)
    batches = group_by_size([tuple(s.lq.shape[-2:]) for s in samples], setup.batch_size)
    with torch.no_grad(), PeakMemory(device) as peak:
        for batch in batches:
            group = [samples[i] for i in batch]
            with timer.phase("daclip"):
                lq_host = torch.stack([s.lq for s in group])
                lq = lq_host.to(device)
                contexts = setup.contexts(lq_host, lq) if setup.contexts is not None else None
            image_context, degra_context = contexts if contexts is not None else (None, None)
            with timer.phase("sampling"):
                result = Restorer(sde, setup.network, None, device).restore(
                    lq, [s.seed for s in group], sampler, (image_context, degra_context))
            with timer.phase("metrics"):
                values = setup.metrics(result.x, torch.stack([s.gt for s in group]))
            x_host = result.x.float().cpu()
            for k, i in enumerate(batch):
                outputs[i], metrics[i] = x_host[k], values[k]
    return PathRun(outputs, metrics, dict(timer.seconds), setup.network.seconds(), setup.network.image_evals,
                   setup.network.flops, peak.bytes)


# ---- the speed benchmark --------------------------------------------------------------------


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler row: the sampler name, its label in the tables and its `sampler:` block."""

    name: str
    label: str
    config: SamplerConfig

    @property
    def nfe(self) -> int:
        return self.config.num_sample_steps


def mrsampler_block() -> dict[str, Any]:
    """The `sampler:` block of options/mrsampler.yml, or the reference's when that file is absent."""
    if MRSAMPLER_OPTIONS.is_file():
        block = dict(read_yaml(MRSAMPLER_OPTIONS).get("sampler") or {})
        block.pop("num_sample_steps", None)
        return block
    return dict(REFERENCE_MRSAMPLER_BLOCK)


def sampler_specs(mrsampler_nfes: Sequence[int], posterior_nfes: Sequence[int]) -> list[SamplerSpec]:
    block = mrsampler_block()
    base = SamplerConfig.from_dict(block)
    label = f"mrsampler-{base.solver_type}{base.order}-{base.parameterization}"
    specs = [SamplerSpec("mrsampler", label, base.with_overrides(num_sample_steps=n)) for n in mrsampler_nfes]
    specs += [SamplerSpec("posterior", "posterior", SamplerConfig(num_sample_steps=n)) for n in posterior_nfes]
    return specs


@dataclass
class Settings:
    """What one benchmark run measures (see `parse_args` for the meaning of each)."""

    device: torch.device
    sizes: list[int]
    nfe: list[int]
    posterior_nfe: list[int]
    images: int
    ref_images: int
    batch_size: int | str
    precision: str
    channels_last: bool
    compile: bool
    network: str
    seed: int = 0
    crop_border: int = CROP_BORDER


@dataclass
class Report:
    environment: dict[str, Any]
    settings: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    warmup: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def environment(device: torch.device, argv: Sequence[str] | None) -> dict[str, Any]:
    return {
        "device": describe_device(device) if device.type == "cuda" else f"cpu: {cpu_name()} ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python scripts/benchmark.py " + shlex.join(list(sys.argv[1:] if argv is None else argv)),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def resolve_batch_size(batch_size: int | str, images: int, probe: NetworkCall, device: torch.device, size: int,
                       context_dim: int | None) -> int:
    """`--batch-size`, or for `auto` the runtime's choice from free GPU memory (probing `probe`
    at ``size x size``; 1 on the CPU); never more than the number of images."""
    if batch_size != "auto":
        return min(int(batch_size), images)

    def forward(batch: int) -> None:
        x, mu = torch.rand(2, batch, 3, size, size, device=device)
        ctx = torch.randn(batch, context_dim, device=device) if context_dim and context_dim > 0 else None
        with torch.no_grad():
            probe(x, mu, 50.0, text_context=ctx, image_context=ctx)

    return min(auto_batch_size(forward, device), images)


@dataclass
class Paths:
    """Both paths around the same seeded random weights; `probe` is the fast path's network,
    not compiled, for the `auto` batch size."""

    reference: PathSetup
    fast: PathSetup
    probe: NetworkCall


def build_paths(settings: Settings, report: Report) -> Paths:
    """The reference path (float32 UNet, batch 1) and the fast path (batch size set per image size)."""
    device = settings.device
    setting, daclip_config = NETWORKS[settings.network]
    torch.manual_seed(settings.seed)
    network = build_network("ConditionalUNet", setting).eval().requires_grad_(False)
    daclip = build_daclip(daclip_config).eval().requires_grad_(False).to(device)
    lpips = LpipsMetric.create(device)
    if lpips is None:
        report.notes.append(f"LPIPS skipped in both paths: {unavailable_reason()}")
    runtime = RuntimeSettings(device=str(device), precision=settings.precision, channels_last=settings.channels_last,
                              compile=settings.compile)
    fast_call = prepare_network(copy.deepcopy(network), device, runtime)
    eager = NetworkCall(eager_module(fast_call.network), device, precision=settings.precision,
                        channels_last=settings.channels_last)
    reference_call = NetworkCall(copy.deepcopy(network).to(device), device)
    crop = settings.crop_border
    reference = PathSetup("reference", ProfiledDenoiser(reference_call, device), reference_contexts(daclip, device),
                          reference_metrics(crop, lpips), batch_size=1)
    encoder = ContextEncoder(daclip, daclip_autocast_dtype("auto", device))
    fast = PathSetup("fast", ProfiledDenoiser(fast_call, device, flop_model=eager), fast_contexts(encoder),
                     fast_metrics(crop, lpips), batch_size=1)
    return Paths(reference, fast, eager)


def summarize(path: str, spec: SamplerSpec, size: int, batch: int, run: PathRun, settings: Settings) -> dict[str, Any]:
    n = len(run.outputs)
    seconds = run.seconds
    fast = path == "fast"
    return {
        "path": path, "sampler": spec.label, "size": size, "nfe": spec.nfe, "images": n, "batch": batch,
        "precision": settings.precision if fast else "fp32",
        "channels_last": settings.channels_last if fast else False,
        "compile": settings.compile if fast else False,
        "images_per_s": n / seconds, "s_per_image": seconds / n,
        "sampling_s_per_image": run.phase_seconds.get("sampling", 0.0) / n,
        "daclip_s_per_image": run.phase_seconds.get("daclip", 0.0) / n,
        "metrics_s_per_image": run.phase_seconds.get("metrics", 0.0) / n,
        "network_share": run.network_seconds / seconds,
        "network_ms_per_image_eval": 1e3 * run.network_seconds / max(run.image_evals, 1),
        "gflop_per_image_eval": run.flops / max(run.image_evals, 1) / 1e9,
        "tflops": run.flops / run.network_seconds / 1e12 if run.network_seconds > 0 else None,
        "peak_gib": run.peak_bytes / 2**30 if run.peak_bytes is not None else None,
        "speedup": None, "max_abs_diff": None, "max_psnr_diff": None,
    }


def compare(reference: PathRun, fast: PathRun) -> tuple[float, float]:
    """Largest |output difference| and |PSNR difference| over the images both paths restored."""
    n = len(reference.outputs)
    diff = max(float((a - b).abs().max()) for a, b in zip(reference.outputs, fast.outputs[:n]))
    dpsnr = max(abs(a["psnr"] - b["psnr"]) for a, b in zip(reference.metrics, fast.metrics[:n]))
    return diff, dpsnr


def warm_up(setup: PathSetup, samples: Sequence[Sample], sde: IRSDE, device: torch.device) -> tuple[float, list[int]]:
    """One pass (2 MR Sampler steps) over one batch of each batch shape the timed run will use:
    compiles, fills caches and counts each shape's FLOPs. Returns (seconds, batch shapes)."""
    batches = group_by_size([tuple(s.lq.shape[-2:]) for s in samples], setup.batch_size)
    shapes = sorted({len(b) for b in batches}, reverse=True)
    config = SamplerConfig.from_dict({**mrsampler_block(), "num_sample_steps": WARMUP_STEPS})
    sampler = build_sampler("mrsampler", sde, config)
    seconds = sum(run_path(replace(setup, batch_size=b), samples[:b], sampler, sde, device).seconds for b in shapes)
    return seconds, shapes


def run_benchmark(settings: Settings, argv: Sequence[str] | None = None) -> Report:
    """Measure both paths at every size and sampler of `settings`."""
    setting, daclip_config = NETWORKS[settings.network]
    report = Report(environment(settings.device, argv), {
        **{k: (str(v) if isinstance(v, torch.device) else v) for k, v in asdict(settings).items()},
        "network_setting": setting, "daclip_config": daclip_config,
        "sde": dict(zip(("max_sigma", "T", "schedule", "eps"), SDE_SETTINGS)),
        "mrsampler_block": mrsampler_block(),
    })
    device = settings.device
    sde = IRSDE.create(*SDE_SETTINGS)
    paths = build_paths(settings, report)
    specs = sampler_specs(settings.nfe, settings.posterior_nfe)
    for size in settings.sizes:
        samples = random_samples(settings.images, size, settings.seed + 1000 * size)
        batch = resolve_batch_size(settings.batch_size, settings.images, paths.probe, device, size,
                                   setting.get("context_dim"))
        setups = {"reference": paths.reference, "fast": replace(paths.fast, batch_size=batch)}
        subsets = {"reference": samples[: settings.ref_images], "fast": samples}
        for name, setup in setups.items():
            seconds, shapes = warm_up(setup, subsets[name], sde, device)
            report.warmup.append({"path": name, "size": size, "batch_shapes": shapes, "warmup_s": seconds})
        for spec in specs:
            sampler = build_sampler(spec.name, sde, spec.config)
            runs = {name: run_path(setups[name], subsets[name], sampler, sde, device) for name in setups}
            rows = {name: summarize(name, spec, size, setups[name].batch_size, runs[name], settings) for name in runs}
            rows["fast"]["speedup"] = rows["fast"]["images_per_s"] / rows["reference"]["images_per_s"]
            rows["fast"]["max_abs_diff"], rows["fast"]["max_psnr_diff"] = compare(runs["reference"], runs["fast"])
            report.rows += [rows["reference"], rows["fast"]]
    return report


# ---- quality: fast path against float32 on the demo set -------------------------------------


def load_samples(task, seed: int) -> list[Sample]:
    """A task's images (it has GT) as `Sample`s; image i gets seed + i, as in `test.py`."""
    samples = []
    for i, pair in enumerate(task.pairs):
        lq = torch.from_numpy(np.ascontiguousarray(read_image(pair.lq).transpose(2, 0, 1)))
        gt = read_image_uint8(pair.gt)
        if gt.dtype != np.uint8:
            gt = (gt.astype(np.float32) / 65535.0 * 255.0).round().astype(np.uint8)
        samples.append(Sample(lq, torch.from_numpy(np.ascontiguousarray(gt.transpose(2, 0, 1))), seed + i))
    return samples


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def run_quality(options, settings: Settings, nfes: Sequence[int] | None, tol_psnr: float, tol_ssim: float,
                argv: Sequence[str] | None = None) -> Report:
    """Per task, the mean PSNR / SSIM of the fast path and of the float32 reference-style path
    on the options file's network and test sets, and whether they agree within tolerance."""
    device = settings.device
    report = Report(environment(device, argv), {
        "options": options.name, "precision": settings.precision, "channels_last": settings.channels_last,
        "compile": settings.compile, "batch_size": settings.batch_size, "tolerance_psnr": tol_psnr,
        "tolerance_ssim": tol_ssim,
    })
    g = options.network_G
    network = load_network(g.which_model_G, g.setting, options.path.pretrain_model_G, strict=options.path.strict_load)
    network.eval().requires_grad_(False)
    encoder = load_context_encoder(options, network, device)
    reference_call = NetworkCall(copy.deepcopy(network).to(device), device)
    fast_call = prepare_network(copy.deepcopy(network), device, options.runtime)
    eager = NetworkCall(eager_module(fast_call.network), device, precision=settings.precision,
                        channels_last=settings.channels_last)
    crop = options.effective_crop_border
    tasks = resolve_tasks(options)
    largest = max((max(image_size(p.lq)) for task in tasks for p in task.pairs), default=256)
    batch = resolve_batch_size(settings.batch_size, 10**6, eager, device, largest, g.setting.get("context_dim"))
    reference = PathSetup("reference", ProfiledDenoiser(reference_call, device),
                          reference_contexts(encoder.daclip, device) if encoder else None,
                          reference_metrics(crop, None), 1)
    fast = PathSetup("fast", ProfiledDenoiser(fast_call, device, flop_model=eager),
                     fast_contexts(encoder) if encoder else None, fast_metrics(crop, None), batch)
    sde = IRSDE.create(options.sde.max_sigma, options.sde.T, options.sde.schedule, options.sde.eps)
    for task in tasks:
        if not task.has_gt:
            report.notes.append(f"task {task.name}: no GT folder, no metrics to compare")
            continue
        samples = load_samples(task, options.seed)
        entries = options.runs if not nfes else tuple(dict.fromkeys(
            replace(e, nfe=n) for e in options.runs for n in nfes))
        for entry in entries:
            name, nfe = entry.sampler, entry.nfe
            if True:
                sampler = build_sampler(name, sde, options.sampler_config(entry))
                ref = run_path(reference, samples, sampler, sde, device)
                got = run_path(fast, samples, sampler, sde, device)
                row = {"task": task.name, "sampler": name, "nfe": nfe, "images": len(samples)}
                for key in ("psnr", "ssim", "psnr_y", "ssim_y"):
                    row[f"{key}_fp32"], row[f"{key}_fast"] = _mean(ref.metrics, key), _mean(got.metrics, key)
                    row[f"d_{key}"] = row[f"{key}_fast"] - row[f"{key}_fp32"]
                row["within"] = abs(row["d_psnr"]) <= tol_psnr and abs(row["d_ssim"]) <= tol_ssim
                report.rows.append(row)
    return report


# ---- output ---------------------------------------------------------------------------------


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return fmt.format(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join(lines)


def describe_settings(report: Report, quality: bool) -> list[str]:
    s = report.settings
    if quality:
        return [f"- options: `{s['options']}`; fast path: {s['precision']} autocast, channels_last "
                f"{s['channels_last']}, compile {s['compile']}, batch size {s['batch_size']}; tolerance "
                f"|dPSNR| <= {s['tolerance_psnr']} dB and |dSSIM| <= {s['tolerance_ssim']}"]
    network = s["network_setting"]
    return [
        f"- network: `{s['network']}` ConditionalUNet(nf={network['nf']}, ch_mult={network['ch_mult']}, "
        f"context_dim={network['context_dim']}), DA-CLIP `{s['daclip_config'] if isinstance(s['daclip_config'], str) else 'tiny'}`, "
        f"random weights (seed {s['seed']})",
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
        lines += [markdown_table(report.rows, SPEED_COLUMNS), "", "Warm-up (not in the timings above):", "",
                  markdown_table(report.warmup, WARMUP_COLUMNS)]
    lines += [""] + [f"Note: {note}" for note in report.notes]
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


# ---- command line ---------------------------------------------------------------------------


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmark.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--sizes", nargs="+", type=int, help="image sides (GPU default: 256 512; CPU: 64 128)")
    p.add_argument("--nfe", nargs="+", type=int, help="MR Sampler NFEs (GPU default: 10 20 100; CPU: 10 20)")
    p.add_argument("--posterior-nfe", nargs="*", type=int,
                   help="posterior sampler NFEs, the reference's baseline (GPU default: 100; CPU: none)")
    p.add_argument("--images", type=int, help="images per size for the fast path (GPU default 16, CPU 4); "
                                                   "with --quality: images per task (default: all)")
    p.add_argument("--ref-images", type=int,
                   help="how many of them the reference path restores (default: 4, at most --images)")
    p.add_argument("--batch-size", type=_batch_size, metavar="N|auto", help="fast path batch (GPU default auto, CPU 4)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="bf16",
                   help="fast path autocast of the UNet (default: bf16)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="fast path channels_last (default: on for CUDA, off on the CPU)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile the fast path's UNet (default: off)")
    p.add_argument("--network", choices=tuple(NETWORKS), default="full",
                   help="full: the paper's UNet and DA-CLIP ViT-B-32; small: nf 32; tiny: for tests")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and images")
    p.add_argument("--threads", type=int, help="torch CPU threads for this run (default: torch's choice)")
    p.add_argument("--out", nargs="*", default=[], metavar="FILE",
                   help="write results: .json (everything) or .md (tables; an existing file is updated "
                        "between its <!-- benchmark:SECTION:begin/end --> markers)")
    p.add_argument("--section", help="markdown section name (default: cpu / cuda; quality-cpu / quality-cuda)")
    p.add_argument("--quality", action="store_true",
                   help="compare the fast path's per-task PSNR / SSIM with float32 on --options")
    p.add_argument("--options", default=str(DEMO_OPTIONS), help="options file for --quality (default: options/demo.yml)")
    p.add_argument("--tol-psnr", type=float, default=0.05, help="--quality tolerance on PSNR, dB (default 0.05)")
    p.add_argument("--tol-ssim", type=float, default=0.001, help="--quality tolerance on SSIM (default 0.001)")
    args = p.parse_args(argv)
    for name in ("images", "ref_images", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1")
    for name in ("sizes", "nfe", "posterior_nfe"):
        if any(v < 1 for v in getattr(args, name) or []):
            p.error(f"--{name.replace('_', '-')}: values must be >= 1")
    return args


def resolve_settings(args: argparse.Namespace) -> Settings:
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise SystemExit(f"benchmark.py: --device {args.device}: {exc}") from None
    defaults = DEVICE_DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    pick = lambda name: defaults[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    images = pick("images")
    return Settings(
        device=device, sizes=pick("sizes"), nfe=pick("nfe"), posterior_nfe=pick("posterior_nfe"), images=images,
        ref_images=min(pick("ref_images"), images), batch_size=pick("batch_size"), precision=args.precision,
        channels_last=pick("channels_last"), compile=args.compile, network=args.network, seed=args.seed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, argv)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    settings = resolve_settings(args)
    if args.quality:
        overrides = [("device", str(settings.device)), ("precision", settings.precision),
                     ("channels_last", settings.channels_last), ("compile", settings.compile),
                     ("batch_size", settings.batch_size)]
        if args.images is not None:
            overrides.append(("max_images", args.images))
        if not Path(args.options).is_file():
            print(f"benchmark.py --quality: options file {args.options} does not exist (train the demo "
                  f"network first, or pass --options)", file=sys.stderr)
            return 2
        options = load_options(args.options, overrides)
        report = run_quality(options, settings, args.nfe, args.tol_psnr, args.tol_ssim, argv)
        section = args.section or f"quality-{settings.device.type}"
    else:
        report = run_benchmark(settings, argv)
        section = args.section or settings.device.type
    print(render_markdown(report, args.quality), end="")
    write_outputs(report, args.out, section, args.quality)
    if args.quality and not all(row["within"] for row in report.rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
