"""Quality of the fast path: per task, the mean PSNR / SSIM of the fast path against the float32
reference-style path, on an options file's network and test sets (default: the demo)."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from uir.benchmark.paths import PathSetup, fast_contexts, fast_metrics, reference_contexts, reference_metrics, run_path, task_samples
from uir.benchmark.profiling import ProfiledDenoiser
from uir.benchmark.report import Report, environment
from uir.benchmark.settings import Settings
from uir.benchmark.speed import fast_network, resolve_batch_size
from uir.data import image_size
from uir.metrics import METRICS, default_metrics, image_metric_names
from uir.evaluation.conditioning import load_context_encoder
from uir.evaluation.tasks import resolve_tasks
from uir.models import load_network
from uir.options import EvalOptions
from uir.precision import PRECISIONS
from uir.restoration import Restorer
from uir.runtime import NetworkCall
from uir.evaluation.sweep import build_sampler_for
from uir.sde import IRSDE

# The metrics compared: the per-image ones that need no weights (PSNR, SSIM, PSNR-Y, SSIM-Y).
METRIC_KEYS = tuple(n for n in image_metric_names(default_metrics()) if METRICS[n].weights is None)


@dataclass(frozen=True)
class Tolerance:
    """Issue 17's bar: mean |dPSNR| over a task's images, the largest one, and |dSSIM| of the means."""

    psnr: float = 0.05
    psnr_max: float = 0.15
    ssim: float = 0.001


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def compare_row(task: str, sampler: str, nfe: int, precision: str, reference: list[dict], fast: list[dict],
                tolerance: Tolerance) -> dict:
    """One table row: both paths' mean metrics, their differences, the mean and max over images
    of |dPSNR|, and whether they are within `tolerance`."""
    row = {"task": task, "sampler": sampler, "nfe": nfe, "precision": precision, "images": len(reference)}
    for key in METRIC_KEYS:
        row[f"{key}_fp32"], row[f"{key}_fast"] = _mean(reference, key), _mean(fast, key)
        row[f"d_{key}"] = row[f"{key}_fast"] - row[f"{key}_fp32"]
    d_psnr = [abs(b["psnr"] - a["psnr"]) for a, b in zip(reference, fast)]
    row["mean_abs_d_psnr"], row["max_abs_d_psnr"] = float(np.mean(d_psnr)), float(np.max(d_psnr))
    row["within"] = (row["mean_abs_d_psnr"] <= tolerance.psnr and row["max_abs_d_psnr"] <= tolerance.psnr_max
                     and abs(row["d_ssim"]) <= tolerance.ssim)
    return row


def quality_precisions(asked: Sequence[str] | None, device: torch.device) -> list[str]:
    """The precisions `--quality` compares with float32: those asked, or every one but fp32
    (and but tf32 on the CPU, where it is fp32)."""
    if asked:
        return list(asked)
    return [p for p in PRECISIONS if p != "fp32" and not (p == "tf32" and device.type != "cuda")]


def run_quality(options: EvalOptions, settings: Settings, nfes: Sequence[int] | None, tolerance: Tolerance,
                argv: Sequence[str] | None = None, precisions: Sequence[str] | None = None) -> Report:
    """Per task, sweep point and precision, the mean PSNR / SSIM of the fast path and of the
    float32 reference-style path on the options file's network and test sets, and whether they
    agree within `tolerance`. The reference path runs once per task and point."""
    device = settings.device
    precisions = quality_precisions(precisions, device)
    report = Report(environment(device, argv), {
        "options": options.outputs.name, "precision": ", ".join(precisions), "channels_last": settings.channels_last,
        "compile": settings.compile, "batch_size": settings.batch_size, "tolerance_psnr": tolerance.psnr,
        "tolerance_psnr_max": tolerance.psnr_max, "tolerance_ssim": tolerance.ssim,
    })
    r = options.restorer
    g = r.network_G
    network = load_network(g.which_model_G, g.setting, r.path.pretrain_model_G, strict=r.path.strict_load)
    network.eval().requires_grad_(False)
    encoder = load_context_encoder(r, network, device)
    sde = IRSDE.from_settings(r.sde)
    calls = {p: fast_network(network, device, r.runtime.with_overrides(precision=p)) for p in precisions}
    tasks = resolve_tasks(options.data)
    largest = max((max(image_size(p.lq)) for task in tasks for p in task.pairs), default=256)
    probe = Restorer(sde, calls[precisions[0]][1], encoder, device)
    batch = resolve_batch_size(settings.batch_size, 10**6, probe, largest)
    crop = options.effective_crop_border
    reference = PathSetup("reference", ProfiledDenoiser(NetworkCall(copy.deepcopy(network).to(device), device), device),
                          reference_contexts(encoder.daclip, device) if encoder else None,
                          reference_metrics(crop, None), 1)
    fast = {p: PathSetup("fast", ProfiledDenoiser(call, device, flop_model=eager),
                         fast_contexts(encoder) if encoder else None, fast_metrics(crop, None), batch)
            for p, (call, eager) in calls.items()}
    points = options.points if not nfes else tuple({(replace(p, nfe=n)).folder: replace(p, nfe=n)
                                                    for p in options.points for n in nfes}.values())
    for task in tasks:
        if not task.has_gt:
            report.notes.append(f"task {task.name}: no GT folder, no metrics to compare")
            continue
        samples = task_samples(task, r.seed)
        for point in points:
            sampler = build_sampler_for(r, point, sde)
            ref = run_path(reference, samples, sampler, sde, device)
            for precision, setup in fast.items():
                got = run_path(setup, samples, sampler, sde, device)
                report.rows.append(compare_row(task.name, point.sampler, point.nfe, precision, ref.metrics,
                                               got.metrics, tolerance))
    return report
