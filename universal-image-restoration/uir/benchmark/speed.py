"""The speed benchmark: both paths around the same seeded random weights, at every image size
and sampler of the `Settings`, one row per (path, sampler, size, NFE).

Rows give images/s end to end, seconds per image in total and per phase, the network's share
of the time, its ms per image and evaluation, its FLOPs per image and evaluation
(FlopCounterMode, once per input shape) and achieved TFLOP/s, peak CUDA memory, and for the
fast path the speed-up over the reference path and how far its outputs are from the reference
path's. Each path is warmed up once per image size (one batch of each batch shape, 2 sampling
steps) before it is timed; the warm-up time, which includes compilation under `compile`, is
reported on its own.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from uir.benchmark.paths import (
    PathRun, PathSetup, Sample, fast_contexts, fast_metrics, random_samples, reference_contexts, reference_metrics,
    run_path,
)
from uir.benchmark.profiling import ProfiledDenoiser, eager_module
from uir.benchmark.report import Report, environment
from uir.benchmark.settings import NETWORKS, SDE_SETTINGS, BenchPoint, Settings, mrsampler_block, sweep_points, warmup_config
from uir.data import group_by_size
from uir.models.conditioning import ContextEncoder, daclip_autocast_dtype
from uir.metrics import LpipsMetric
from uir.metrics.lpips_metric import unavailable_reason
from uir.models import build_network
from uir.models.daclip import build_daclip
from uir.restoration import Restorer
from uir.runtime import NetworkCall, RuntimeSettings, prepare_network
from uir.samplers import build_sampler
from uir.sde import IRSDE


def resolve_batch_size(batch_size: int | str, images: int, probe: Restorer, size: int) -> int:
    """`batch_size`, or for `auto` the runtime's choice from free GPU memory (probing `probe`
    at ``size x size``; 1 on the CPU); never more than the number of images."""
    chosen = probe.auto_batch_size(size, size) if batch_size == "auto" else int(batch_size)
    return min(chosen, images)


@dataclass
class Paths:
    """Both paths around the same seeded random weights; `probe` is the fast path's network,
    not compiled, for the `auto` batch size."""

    reference: PathSetup
    fast: PathSetup
    probe: Restorer


def fast_network(network: torch.nn.Module, device: torch.device, runtime: RuntimeSettings) -> tuple[NetworkCall, NetworkCall]:
    """The fast path's network as `prepare_network` makes it, and the same module not compiled
    (for FLOP counts and memory probes)."""
    fast_call = prepare_network(copy.deepcopy(network), device, runtime)
    eager = NetworkCall(eager_module(fast_call.network), device, precision=runtime.precision,
                        channels_last=runtime.channels_last)
    return fast_call, eager


def build_paths(settings: Settings, report: Report, sde: IRSDE | None = None) -> Paths:
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
    fast_call, eager = fast_network(network, device, runtime)
    reference_call = NetworkCall(copy.deepcopy(network).to(device), device)
    crop = settings.crop_border
    reference = PathSetup("reference", ProfiledDenoiser(reference_call, device), reference_contexts(daclip, device),
                          reference_metrics(crop, lpips), batch_size=1)
    encoder = ContextEncoder(daclip, daclip_autocast_dtype("auto", device))
    fast = PathSetup("fast", ProfiledDenoiser(fast_call, device, flop_model=eager), fast_contexts(encoder),
                     fast_metrics(crop, lpips), batch_size=1)
    probe = Restorer(sde or IRSDE.create(*SDE_SETTINGS), eager, encoder, device)
    return Paths(reference, fast, probe)


def summarize(path: str, row: BenchPoint, size: int, batch: int, run: PathRun, settings: Settings) -> dict[str, Any]:
    n = len(run.outputs)
    seconds = run.seconds
    fast = path == "fast"
    return {
        "path": path, "sampler": row.point.name, "size": size, "nfe": row.point.nfe, "images": n, "batch": batch,
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
    sampler = build_sampler("mrsampler", sde, warmup_config())
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
    paths = build_paths(settings, report, sde)
    points = sweep_points(sde, settings.nfe, settings.posterior_nfe)
    for size in settings.sizes:
        samples = random_samples(settings.images, size, settings.seed + 1000 * size)
        batch = resolve_batch_size(settings.batch_size, settings.images, paths.probe, size)
        setups = {"reference": paths.reference, "fast": replace(paths.fast, batch_size=batch)}
        subsets = {"reference": samples[: settings.ref_images], "fast": samples}
        for name, setup in setups.items():
            seconds, shapes = warm_up(setup, subsets[name], sde, device)
            report.warmup.append({"path": name, "size": size, "batch_shapes": shapes, "warmup_s": seconds})
        for point in points:
            runs = {name: run_path(setups[name], subsets[name], point.sampler, sde, device) for name in setups}
            rows = {name: summarize(name, point, size, setups[name].batch_size, runs[name], settings) for name in runs}
            rows["fast"]["speedup"] = rows["fast"]["images_per_s"] / rows["reference"]["images_per_s"]
            rows["fast"]["max_abs_diff"], rows["fast"]["max_psnr_diff"] = compare(runs["reference"], runs["fast"])
            report.rows += [rows["reference"], rows["fast"]]
    return report
