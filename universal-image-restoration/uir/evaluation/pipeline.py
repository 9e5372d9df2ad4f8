"""The evaluation behind `test.py`: `run(options) -> RunResult`.

For every task the images are read once, in batches of equal-size images; each batch gets
its DA-CLIP contexts once and is then restored by every (sampler, NFE) of the sweep. Each
image has its own random generator seeded with ``seed + index`` (its index in the task's
sorted list): it draws the prior sample ``x_T = mu + sigma_inf z`` and then the noise of a
stochastic sampler, so an image's result does not depend on its batch. Restored images are
quantised to 8 bits like the reference's ``tensor2img``; PSNR / SSIM (RGB and Y) are
computed from those 8-bit images against the 8-bit GT, and LPIPS from the unquantised
output against the GT, as the reference does.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from uir.data.paired import (
    DataError, PairedImageDataset, SizeGroupedBatchSampler, image_size, make_loader,
)
from uir.evaluation.conditioning import ContextEncoder, load_context_encoder
from uir.evaluation.run_folder import (
    LOG_FILE, OPTIONS_FILE, PerImageLog, check_resumable, choose_run_dir, log_to_file, prepare_run_dir,
    save_options, write_status,
)
from uir.evaluation.runtime import NetworkCall, auto_batch_size, describe_device, prepare_network, resolve_device
from uir.evaluation.tables import sampler_settings, summarize, to_markdown, write_tables
from uir.evaluation.tasks import TaskData, resolve_tasks
from uir.evaluation.writer import ImageWriter
from uir.metrics import LpipsMetric, LpipsUnavailable, batch_image_metrics, quantize_to_uint8, unavailable_reason
from uir.metrics.reference import validate_crop
from uir.models.networks import load_network
from uir.options.loader import OptionsError
from uir.options.schema import EvalOptions
from uir.samplers import PerSampleNoise, SampleResult, SamplerConfig, build_sampler
from uir.samplers.registry import Sampler
from uir.sde.irsde import IRSDE

logger = logging.getLogger(__name__)
# Per-image lines and the final table go to the run's log file only (the console shows the
# progress bar; test.py prints the table).
FILE_LOGGER = "uir.evaluation.file"
file_logger = logging.getLogger(FILE_LOGGER)
file_logger.propagate = False


@dataclass(frozen=True)
class SweepPoint:
    """One (sampler, NFE) of the sweep, built and validated."""

    sampler_name: str
    nfe: int
    config: SamplerConfig
    sampler: Sampler

    @property
    def folder(self) -> str:
        return f"{self.sampler_name}_nfe{self.nfe}"

    @property
    def settings(self) -> dict[str, Any]:
        return sampler_settings(self.sampler_name, self.config)


@dataclass(frozen=True)
class RunResult:
    """What a run produced: its folder, the results table rows, and the files written."""

    run_dir: Path
    table: list[dict[str, Any]]
    paths: dict[str, Path]
    device: str
    processed: int  # (image, sampler, nfe) restorations done in this call
    skipped: int  # ... found already done (resume)


@dataclass
class _Session:
    options: EvalOptions
    device: torch.device
    sde: IRSDE
    points: list[SweepPoint]
    denoiser: NetworkCall
    encoder: ContextEncoder | None
    lpips: LpipsMetric | None
    crop: int
    batch_size: int = 1
    counts: dict[str, int] = field(default_factory=lambda: {"processed": 0, "skipped": 0})


def build_sweep(options: EvalOptions, sde: IRSDE) -> list[SweepPoint]:
    """Every (sampler, NFE) of the sweep, samplers first, each checked by building it."""
    points = []
    for name, nfe in options.runs:
        try:
            config = options.sampler.with_overrides(num_sample_steps=nfe)
            points.append(SweepPoint(name, nfe, config, build_sampler(name, sde, config)))
        except ValueError as exc:
            raise OptionsError(f"sampler {name!r} with nfe {nfe}: {exc}") from exc
    return points


def restore_batch(
    sampler: Sampler,
    denoiser: Callable,
    sde: IRSDE,
    mu: Tensor,
    seeds: Sequence[int],
    *,
    text_context: Tensor | None = None,
    image_context: Tensor | None = None,
) -> SampleResult:
    """Restore a batch of LQ images `mu` [B,3,H,W]: draw x_T = mu + sigma_inf z from each image's
    generator (seeded by `seeds`), then sample; stochastic samplers keep drawing from it."""
    noise = PerSampleNoise.from_seeds(seeds, mu.device)
    x_T = sde.prior_sample(mu, noise(mu))
    return sampler.sample(denoiser, x_T, mu, text_context=text_context, image_context=image_context, noise=noise)


def _make_lpips(options: EvalOptions, device: torch.device) -> LpipsMetric | None:
    if not (options.metrics and options.lpips):
        return None
    try:
        metric = LpipsMetric.create(device)
    except LpipsUnavailable as exc:
        logger.warning("%s -- the LPIPS column stays empty", exc)
        return None
    if metric is None:
        logger.warning("%s -- the LPIPS column stays empty", unavailable_reason())
    return metric


def _image_sizes(task: TaskData, options: EvalOptions, crop: int) -> list[tuple[int, int]]:
    """LQ sizes from the file headers; checks GT sizes match and the crop leaves room for SSIM."""
    sizes = []
    for pair in task.pairs:
        size = image_size(pair.lq)
        if pair.gt is not None:
            gt_size = image_size(pair.gt)
            if gt_size != size:
                raise DataError(
                    f"{pair.lq} ({size[0]}x{size[1]}) and its GT {pair.gt} ({gt_size[0]}x{gt_size[1]}) differ in "
                    f"size; LQ and GT must have the same size (they are paired in sorted order)"
                )
            if options.metrics:
                try:
                    validate_crop(*size, crop)
                except ValueError as exc:
                    raise DataError(f"{pair.gt}: {exc}; lower crop_border (now {crop})") from exc
        sizes.append(size)
    return sizes


def _forward_once(session: _Session, batch: int, height: int, width: int) -> None:
    """One network call (with contexts) on random images: probes memory, warms kernels up."""
    mu = torch.rand(batch, 3, height, width, device=session.device)
    x = torch.rand(batch, 3, height, width, device=session.device)  # not `mu`: compile guards on aliasing
    with torch.no_grad():
        image_context, degra_context = session.encoder(mu) if session.encoder else (None, None)
        session.denoiser(x, mu, float(session.sde.T), image_context=image_context, text_context=degra_context)


def _resolve_batch_size(session: _Session, sizes: dict[str, list[tuple[int, int]]]) -> int:
    options = session.options
    if options.batch_size != "auto":
        return int(options.batch_size)
    all_sizes = [s for task_sizes in sizes.values() for s in task_sizes]
    height, width = max(all_sizes, key=lambda s: s[0] * s[1])
    batch_size = auto_batch_size(lambda batch: _forward_once(session, batch, height, width), session.device)
    logger.info("batch_size auto: %d image(s) per batch (largest image %dx%d, %s)", batch_size, height, width,
                session.device)
    return batch_size


def _warm_up(session: _Session, sizes: dict[str, list[tuple[int, int]]]) -> None:
    """On CUDA or with torch.compile, run the network once at the most common image size before
    timing, so that kernel selection and compilation are not billed to the first images."""
    if session.device.type != "cuda" and not session.options.compile:
        return
    (height, width), _ = Counter(s for task_sizes in sizes.values() for s in task_sizes).most_common(1)[0]
    start = time.perf_counter()
    _forward_once(session, session.batch_size, height, width)
    _sync(session.device)
    logger.info("warm-up pass (%dx%d, batch %d): %.1f s", height, width, session.batch_size,
                time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _Restored:
    """One sweep point's outputs for the chosen images of a batch."""

    images: Any  # uint8 [n, H, W, 3] numpy, RGB
    metrics: dict[str, list[float]]  # per image; empty without GT / metrics
    seconds: float  # sampling time per image
    model_calls: int
    seeds: list[int]


def _restore_and_score(session: _Session, point: SweepPoint, lq: Tensor, gt: Tensor | None, gt_u8: Tensor | None,
                       contexts: tuple[Tensor | None, Tensor | None], seeds: list[int]) -> _Restored:
    device = session.device
    _sync(device)
    start = time.perf_counter()
    result = restore_batch(point.sampler, session.denoiser, session.sde, lq, seeds,
                           image_context=contexts[0], text_context=contexts[1])
    _sync(device)
    seconds = (time.perf_counter() - start) / len(seeds)
    out_u8 = quantize_to_uint8(result.x)
    metrics: dict[str, Tensor] = {}
    if gt_u8 is not None:
        metrics = batch_image_metrics(out_u8, gt_u8, session.crop)
        if session.lpips is not None:
            metrics["lpips"] = session.lpips(result.x, gt)
    images = out_u8.permute(0, 2, 3, 1).cpu().numpy()
    return _Restored(images, {k: v.tolist() for k, v in metrics.items()}, seconds, result.nfe, seeds)


def _record(session: _Session, task: TaskData, point: SweepPoint, indices: list[int], restored: _Restored,
            run_dir: Path, writer: ImageWriter, per_image: PerImageLog) -> None:
    """Queue the PNGs; each image's per-image CSV row is written once its PNG is on disk."""
    options = session.options
    for j, index in enumerate(indices):
        pair = task.pairs[index]
        output = Path(task.name) / point.folder / f"{pair.name}{options.suffix or ''}.png"
        row = {
            "task": task.name, "sampler": point.sampler_name, "nfe": point.nfe, "image": pair.name,
            "output": output.as_posix() if options.save_images else "",
            **{metric: values[j] for metric, values in restored.metrics.items()},
            "seconds": restored.seconds, "model_calls": restored.model_calls, "seed": restored.seeds[j],
            "batch_size": len(indices),
        }
        file_logger.info("%s %s: %s", task.name, point.folder, " ".join(
            [pair.name] + [f"{m}={row[m]:.6f}" for m in restored.metrics] + [f"sec={restored.seconds:.4f}"]))
        if options.save_images:
            writer.submit(run_dir / output, restored.images[j], then=lambda row=row: per_image.append(row))
        else:
            per_image.append(row)


def _evaluate_batch(session: _Session, task: TaskData, batch: dict, pending: dict[int, set[str]], run_dir: Path,
                    writer: ImageWriter, per_image: PerImageLog, bar) -> None:
    """Restore one batch with every sweep point that still needs its images."""
    if batch.get("error"):
        raise DataError(batch["error"])
    device = session.device
    indices = batch["index"].tolist()
    lq = batch["lq"].to(device, non_blocking=True)
    gt = batch["gt"].to(device, non_blocking=True) if batch["gt"] is not None and session.options.metrics else None
    gt_u8 = quantize_to_uint8(gt) if gt is not None else None
    contexts = session.encoder(lq) if session.encoder else (None, None)

    for point in session.points:
        chosen = [k for k, i in enumerate(indices) if point.folder in pending[i]]
        if not chosen:
            continue
        rows = torch.tensor(chosen, device=device)

        def take(t: Tensor | None) -> Tensor | None:
            return t if t is None or len(chosen) == len(indices) else t.index_select(0, rows)

        chosen_indices = [indices[k] for k in chosen]
        seeds = [session.options.seed + i for i in chosen_indices]
        restored = _restore_and_score(session, point, take(lq), take(gt), take(gt_u8),
                                      (take(contexts[0]), take(contexts[1])), seeds)
        _record(session, task, point, chosen_indices, restored, run_dir, writer, per_image)
        for i in chosen_indices:
            pending[i].discard(point.folder)
        session.counts["processed"] += len(chosen)
        bar.update(len(chosen))


def _evaluate_task(session: _Session, task: TaskData, sizes: list[tuple[int, int]], run_dir: Path,
                   writer: ImageWriter, per_image: PerImageLog, progress: bool) -> None:
    done = per_image.done()
    pending = {
        i: {p.folder for p in session.points if (task.name, p.sampler_name, p.nfe, pair.name) not in done}
        for i, pair in enumerate(task.pairs)
    }
    todo = [i for i in range(len(task.pairs)) if pending[i]]
    total = sum(len(pending[i]) for i in todo)
    skipped = len(task.pairs) * len(session.points) - total
    session.counts["skipped"] += skipped
    if skipped:
        logger.info("[%s] %d restoration(s) already done: skipped", task.name, skipped)
    if not todo:
        return
    batches = SizeGroupedBatchSampler(sizes, session.batch_size, todo)
    pairs = task.pairs if session.options.metrics else [replace(p, gt=None) for p in task.pairs]
    dataset = PairedImageDataset(pairs, errors="return")
    loader = make_loader(dataset, batches, num_workers=min(session.options.num_workers, len(batches)),
                         pin_memory=session.device.type == "cuda")
    writer.wait_idle()  # no PNG write in flight while the loader's worker processes fork
    with tqdm(total=total, desc=task.name, unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for batch in loader:
            _evaluate_batch(session, task, batch, pending, run_dir, writer, per_image, bar)


def _setup(options: EvalOptions) -> tuple[_Session, list[TaskData], dict[str, list[tuple[int, int]]]]:
    try:
        device = resolve_device(options)
    except ValueError as exc:
        raise OptionsError(str(exc)) from exc
    logger.info("device: %s", describe_device(device))
    crop = options.effective_crop_border
    tasks = resolve_tasks(options)
    sizes = {task.name: _image_sizes(task, options, crop) for task in tasks}
    sde = IRSDE.create(options.sde.max_sigma, options.sde.T, options.sde.schedule, options.sde.eps)
    points = build_sweep(options, sde)
    network = load_network(options.network_G.which_model_G, options.network_G.setting,
                           options.path.pretrain_model_G, strict=options.path.strict_load)
    logger.info("network %s loaded from %s", options.network_G.which_model_G, options.path.pretrain_model_G)
    encoder = load_context_encoder(options, network, device)
    denoiser = prepare_network(network, device, options)
    session = _Session(options, device, sde, points, denoiser, encoder, _make_lpips(options, device), crop)
    session.batch_size = _resolve_batch_size(session, sizes)
    _warm_up(session, sizes)
    return session, tasks, sizes


def _describe_run(session: _Session, tasks: list[TaskData], source: str | None) -> None:
    o = session.options
    logger.info("options: %s", source or "(given as an object)")
    logger.info("device: %s; precision %s; channels_last %s; compile %s; batch_size %d; num_workers %d",
                describe_device(session.device), o.precision, o.channels_last, o.compile, session.batch_size,
                o.num_workers)
    for task in tasks:
        logger.info("task %s: %d image(s) from %s%s", task.name, len(task.pairs), task.lq_dir,
                    f" (GT {task.gt_dir})" if task.gt_dir else " (no GT: no metrics)")
    if o.sweep is not None and o.sweep.runs is not None:
        sweep = "runs " + ", ".join(f"{name} nfe {nfe}" for name, nfe in o.runs)
    else:
        sweep = f"samplers {', '.join(o.samplers)} x nfe {', '.join(map(str, o.nfes))}"
    logger.info("sweep: %s; seed %d (+ image index); crop_border %d", sweep, o.seed, session.crop)


def run(options: EvalOptions, *, progress: bool = True, source: str | None = None) -> RunResult:
    """Evaluate every task x sampler x NFE of `options`; write images, per-image CSV and tables.

    Raises `OptionsError`, `DataError`, `CheckpointError` (uir.models.checkpoint) and
    `RunFolderError` with messages meant for the user (see `USER_ERRORS`).
    """
    session, tasks, sizes = _setup(options)
    resolved = options.to_dict()
    run_dir, mode = choose_run_dir(options.results_root, options.name, overwrite=options.overwrite,
                                   resume=options.resume)
    if mode == "resume":
        check_resumable(run_dir, resolved)
    prepare_run_dir(run_dir, mode)
    save_options(run_dir, resolved)
    write_status(run_dir, status="running", mode=mode, device=str(session.device),
                 started=time.strftime("%Y-%m-%d %H:%M:%S"))
    with log_to_file(run_dir / LOG_FILE, ("uir", FILE_LOGGER)):
        logger.info("run folder: %s (%s)", run_dir, mode)
        _describe_run(session, tasks, source)
        per_image = PerImageLog(run_dir, resume=mode == "resume")
        try:
            with ImageWriter() as writer, torch.no_grad():
                for task in tasks:
                    _evaluate_task(session, task, sizes[task.name], run_dir, writer, per_image, progress)
        except BaseException as exc:
            per_image.close()
            interrupted = isinstance(exc, KeyboardInterrupt)
            write_status(run_dir, status="interrupted" if interrupted else "failed", error=str(exc) or type(exc).__name__)
            logger.error("%s after %d restoration(s); rerun with --resume to continue (finished images are kept)",
                         "interrupted" if interrupted else f"failed ({type(exc).__name__}: {exc})",
                         session.counts["processed"])
            raise
        per_image.close()
        points = [(t.name, p.sampler_name, p.nfe, p.settings) for t in tasks for p in session.points]
        table = summarize(per_image.snapshot(), points)
        meta = {"name": options.name, "run_dir": str(run_dir), "device": describe_device(session.device),
                "crop_border": session.crop, "seed": options.seed, "precision": options.precision,
                "batch_size": session.batch_size, "options": source}
        paths = write_tables(run_dir, table, meta=meta)
        paths.update(per_image=per_image.path, options=run_dir / OPTIONS_FILE, log=run_dir / LOG_FILE)
        write_status(run_dir, status="finished", finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        file_logger.info("results:\n%s", to_markdown(table))
        logger.info("results: %s (.md, .json); per image: %s", paths["csv"], paths["per_image"])
    return RunResult(run_dir, table, paths, str(session.device), session.counts["processed"], session.counts["skipped"])
