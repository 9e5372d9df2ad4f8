"""Quality of the fast path: per task, the mean PSNR / SSIM of the fast path against the float32
reference-style path, on an options file's network and test sets (default: the demo)."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from uir.benchmark.paths import PathSetup, fast_contexts, fast_metrics, reference_contexts, reference_metrics, run_path, task_samples
from uir.benchmark.profiling import ProfiledDenoiser
from uir.benchmark.report import Report, environment
from uir.benchmark.settings import Settings
from uir.benchmark.speed import fast_network, resolve_batch_size
from uir.data import image_size
from uir.evaluation.conditioning import load_context_encoder
from uir.evaluation.tasks import resolve_tasks
from uir.models import load_network
from uir.options import EvalOptions
from uir.restoration import Restorer
from uir.runtime import NetworkCall
from uir.samplers import build_sampler
from uir.sde import IRSDE

METRIC_KEYS = ("psnr", "ssim", "psnr_y", "ssim_y")


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def compare_row(task: str, sampler: str, nfe: int, reference: list[dict], fast: list[dict], tol_psnr: float,
                tol_ssim: float) -> dict:
    """One table row: both paths' mean metrics, their differences, and whether they agree."""
    row = {"task": task, "sampler": sampler, "nfe": nfe, "images": len(reference)}
    for key in METRIC_KEYS:
        row[f"{key}_fp32"], row[f"{key}_fast"] = _mean(reference, key), _mean(fast, key)
        row[f"d_{key}"] = row[f"{key}_fast"] - row[f"{key}_fp32"]
    row["within"] = abs(row["d_psnr"]) <= tol_psnr and abs(row["d_ssim"]) <= tol_ssim
    return row


def run_quality(options: EvalOptions, settings: Settings, nfes: Sequence[int] | None, tol_psnr: float,
                tol_ssim: float, argv: Sequence[str] | None = None) -> Report:
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
    sde = IRSDE.from_settings(options.sde)
    fast_call, eager = fast_network(network, device, options.runtime)
    tasks = resolve_tasks(options)
    largest = max((max(image_size(p.lq)) for task in tasks for p in task.pairs), default=256)
    batch = resolve_batch_size(settings.batch_size, 10**6, Restorer(sde, eager, encoder, device), largest)
    crop = options.effective_crop_border
    reference = PathSetup("reference", ProfiledDenoiser(NetworkCall(copy.deepcopy(network).to(device), device), device),
                          reference_contexts(encoder.daclip, device) if encoder else None,
                          reference_metrics(crop, None), 1)
    fast = PathSetup("fast", ProfiledDenoiser(fast_call, device, flop_model=eager),
                     fast_contexts(encoder) if encoder else None, fast_metrics(crop, None), batch)
    entries = options.runs if not nfes else tuple(dict.fromkeys(replace(e, nfe=n) for e in options.runs for n in nfes))
    for task in tasks:
        if not task.has_gt:
            report.notes.append(f"task {task.name}: no GT folder, no metrics to compare")
            continue
        samples = task_samples(task, options.seed)
        for entry in entries:
            sampler = build_sampler(entry.sampler, sde, options.sampler_config(entry))
            ref = run_path(reference, samples, sampler, sde, device)
            got = run_path(fast, samples, sampler, sde, device)
            report.rows.append(compare_row(task.name, entry.sampler, entry.nfe, ref.metrics, got.metrics,
                                           tol_psnr, tol_ssim))
    return report
