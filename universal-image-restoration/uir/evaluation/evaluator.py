"""The evaluation behind `test.py`: `run(options) -> RunResult`.

For every task the images are read once, in batches of equal-size images; each batch gets
its DA-CLIP contexts once and is then restored by every point (sampler, NFE) of the sweep.
Image i of a task draws its prior sample ``x_T = mu + sigma_inf z`` and then the noise of a
stochastic sampler from its own generator seeded with ``seed + i``, so its result does not
depend on its batch. Restored images are quantised to 8 bits like the reference's
``tensor2img``; PSNR / SSIM (RGB and Y) are computed from those 8-bit images against the 8-bit
GT, and LPIPS from the float output against the GT, as the reference does.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from uir.common.errors import DataError
from uir.data.paired import PairedImageDataset, SizeGroupedBatchSampler, image_size, make_loader
from uir.evaluation.sweep import SweepPoint, build_sweep, load_restorer
from uir.restoration import Restorer
from uir.evaluation.run_folder import LOG_FILE, OPTIONS_FILE, RunFolder, log_to_file
from uir.evaluation.scoring import Scorer, load_lpips
from uir.evaluation.sink import FILE_LOGGER, Restored, ResultSink, file_logger
from uir.evaluation.tables import sampler_settings, summarize, to_markdown, write_tables
from uir.evaluation.tasks import TaskData, resolve_tasks
from uir.metrics import quantize_to_uint8
from uir.metrics.reference import validate_crop
from uir.options.schema import EvalOptions
from uir.runtime import describe_device, synchronize
from uir.sde.irsde import IRSDE

logger = logging.getLogger(__name__)
Size = tuple[int, int]


@dataclass(frozen=True)
class RunResult:
    """What a run produced: its folder, the results table rows, and the files written."""

    run_dir: Path
    table: list[dict[str, Any]]
    paths: dict[str, Path]
    device: str
    processed: int  # (image, sweep point) restorations done in this call
    skipped: int  # ... found already done (resume)


def image_sizes(task: TaskData, crop: int | None) -> list[Size]:
    """LQ sizes from the file headers; checks GT sizes match and (with `crop`) leave room for SSIM."""
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
            if crop is not None:
                try:
                    validate_crop(*size, crop)
                except ValueError as exc:
                    raise DataError(f"{pair.gt}: {exc}; lower crop_border (now {crop})") from exc
        sizes.append(size)
    return sizes


@dataclass(frozen=True)
class Evaluation:
    """A prepared run: the restorer, the sweep, the scorer and the batch size."""

    options: EvalOptions
    restorer: Restorer
    points: list[SweepPoint]
    scorer: Scorer | None
    batch_size: int

    def restore(self, point: SweepPoint, lq: Tensor, gt: Tensor | None, gt_u8: Tensor | None,
                contexts: tuple[Tensor | None, Tensor | None], seeds: list[int]) -> Restored:
        device = self.restorer.device
        synchronize(device)
        start = time.perf_counter()
        result = self.restorer.restore(lq, seeds, point.sampler, contexts)
        synchronize(device)
        seconds = (time.perf_counter() - start) / len(seeds)
        out_u8 = quantize_to_uint8(result.x)
        metrics = self.scorer(result.x, out_u8, gt, gt_u8) if self.scorer is not None and gt_u8 is not None else {}
        images = out_u8.permute(0, 2, 3, 1).cpu().numpy()
        return Restored(images, metrics, seconds, result.nfe, seeds)

    def batch(self, task: TaskData, batch: dict, pending: dict[int, set[str]], sink: ResultSink, bar) -> None:
        """Restore one batch with every sweep point that still needs its images."""
        if batch.get("error"):
            raise DataError(batch["error"])
        device = self.restorer.device
        indices = batch["index"].tolist()
        lq = batch["lq"].to(device, non_blocking=True)
        gt = batch["gt"].to(device, non_blocking=True) if batch["gt"] is not None and self.scorer is not None else None
        gt_u8 = quantize_to_uint8(gt) if gt is not None else None
        contexts = self.restorer.contexts(lq)
        for point in self.points:
            chosen = [k for k, i in enumerate(indices) if point.folder in pending[i]]
            if not chosen:
                continue
            rows = torch.tensor(chosen, device=device)

            def take(t: Tensor | None) -> Tensor | None:
                return t if t is None or len(chosen) == len(indices) else t.index_select(0, rows)

            chosen_indices = [indices[k] for k in chosen]
            seeds = [self.options.seed + i for i in chosen_indices]
            restored = self.restore(point, take(lq), take(gt), take(gt_u8), (take(contexts[0]), take(contexts[1])), seeds)
            sink.record(task, point, chosen_indices, restored)
            for i in chosen_indices:
                pending[i].discard(point.folder)
            bar.update(len(chosen))

    def task(self, task: TaskData, sizes: list[Size], sink: ResultSink, progress: bool) -> int:
        """Restore every image of `task` that the sink has no record of; returns how many were skipped."""
        done = sink.done()
        pending = {i: {p.folder for p in self.points if (task.name, *p.key, pair.name) not in done}
                   for i, pair in enumerate(task.pairs)}
        todo = [i for i in range(len(task.pairs)) if pending[i]]
        total = sum(len(pending[i]) for i in todo)
        skipped = len(task.pairs) * len(self.points) - total
        if skipped:
            logger.info("[%s] %d restoration(s) already done: skipped", task.name, skipped)
        if not todo:
            return skipped
        batches = SizeGroupedBatchSampler(sizes, self.batch_size, todo)
        pairs = task.pairs if self.scorer is not None else [replace(p, gt=None) for p in task.pairs]
        loader = make_loader(PairedImageDataset(pairs, errors="return"), batches,
                             num_workers=min(self.options.num_workers, len(batches)),
                             pin_memory=self.restorer.device.type == "cuda")
        sink.wait_idle()  # no PNG write in flight while the loader's worker processes fork
        with tqdm(total=total, desc=task.name, unit="img", disable=not progress, dynamic_ncols=True) as bar:
            for batch in loader:
                self.batch(task, batch, pending, sink, bar)
        return skipped


def _batch_size(options: EvalOptions, restorer: Restorer, sizes: list[Size]) -> int:
    if options.batch_size != "auto":
        return int(options.batch_size)
    height, width = max(sizes, key=lambda s: s[0] * s[1])
    batch_size = restorer.auto_batch_size(height, width)
    logger.info("batch_size auto: %d image(s) per batch (largest image %dx%d, %s)", batch_size, height, width,
                restorer.device)
    return batch_size


def _warm_up(options: EvalOptions, restorer: Restorer, batch_size: int, sizes: list[Size]) -> None:
    """On CUDA or with torch.compile, run the network once at the most common image size before
    timing, so that kernel selection and compilation are not billed to the first images."""
    if restorer.device.type != "cuda" and not options.runtime.compile:
        return
    (height, width), _ = Counter(sizes).most_common(1)[0]
    start = time.perf_counter()
    restorer.probe(batch_size, height, width)
    synchronize(restorer.device)
    logger.info("warm-up pass (%dx%d, batch %d): %.1f s", height, width, batch_size, time.perf_counter() - start)


def prepare(options: EvalOptions) -> tuple[Evaluation, list[TaskData], dict[str, list[Size]]]:
    """Everything a run needs, checked before its folder is touched: device, test sets, sweep,
    network, DA-CLIP, metrics and the batch size."""
    device = options.runtime.resolve_device()
    logger.info("device: %s", describe_device(device))
    crop = options.effective_crop_border
    tasks = resolve_tasks(options)
    sizes = {task.name: image_sizes(task, crop if options.metrics else None) for task in tasks}
    sde = IRSDE.from_settings(options.sde)
    points = build_sweep(options, sde)
    restorer = load_restorer(options, device=device, sde=sde)
    scorer = Scorer(crop, load_lpips(device) if options.lpips else None) if options.metrics else None
    every_size = [s for task_sizes in sizes.values() for s in task_sizes]
    batch_size = _batch_size(options, restorer, every_size)
    _warm_up(options, restorer, batch_size, every_size)
    return Evaluation(options, restorer, points, scorer, batch_size), tasks, sizes


def _describe(evaluation: Evaluation, tasks: list[TaskData], source: str | None) -> None:
    o = evaluation.options
    logger.info("options: %s", source or "(given as an object)")
    logger.info("device: %s; precision %s; channels_last %s; compile %s; batch_size %d; num_workers %d",
                describe_device(evaluation.restorer.device), o.runtime.precision, o.runtime.channels_last,
                o.runtime.compile, evaluation.batch_size, o.num_workers)
    for task in tasks:
        logger.info("task %s: %d image(s) from %s%s", task.name, len(task.pairs), task.lq_dir,
                    f" (GT {task.gt_dir})" if task.gt_dir else " (no GT: no metrics)")
    if o.sweep.runs is not None:
        sweep = "runs " + ", ".join(f"{e.name} nfe {e.nfe}" for e in o.runs)
    else:
        sweep = (f"samplers {', '.join(dict.fromkeys(e.sampler for e in o.runs))} x "
                 f"nfe {', '.join(map(str, dict.fromkeys(e.nfe for e in o.runs)))}")
    logger.info("sweep: %s; seed %d (+ image index); crop_border %d", sweep, o.seed, o.effective_crop_border)


def run(options: EvalOptions, *, progress: bool = True, source: str | None = None) -> RunResult:
    """Evaluate every task x sweep point of `options`; write images, per-image CSV and tables.

    Raises `UserError`s (uir.common.errors) with messages meant for the user.
    """
    evaluation, tasks, sizes = prepare(options)
    folder = RunFolder.choose(options.results_root, options.name, overwrite=options.overwrite, resume=options.resume)
    folder.prepare(options.to_dict())
    device = evaluation.restorer.device
    with folder.running(device=str(device)), log_to_file(folder.path / LOG_FILE, ("uir", FILE_LOGGER)):
        logger.info("run folder: %s (%s)", folder.path, folder.mode)
        _describe(evaluation, tasks, source)
        skipped = 0
        with ResultSink(folder.path, resume=folder.resuming, suffix=options.suffix,
                        save_images=options.save_images) as sink:
            try:
                with torch.no_grad():
                    for task in tasks:
                        skipped += evaluation.task(task, sizes[task.name], sink, progress)
            except BaseException as exc:
                logger.error("%s after %d restoration(s); rerun with --resume to continue (finished images are kept)",
                             "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed ({type(exc).__name__}: {exc})",
                             sink.processed)
                raise
        points = [(t.name, *p.key, sampler_settings(p.entry.sampler, p.config)) for t in tasks for p in evaluation.points]
        table = summarize(sink.rows(), points)
        meta = {"name": options.name, "run_dir": str(folder.path), "device": describe_device(device),
                "crop_border": options.effective_crop_border, "seed": options.seed,
                "precision": options.runtime.precision, "batch_size": evaluation.batch_size, "options": source}
        paths = write_tables(folder.path, table, meta=meta)
        paths.update(per_image=sink.per_image.path, options=folder.path / OPTIONS_FILE, log=folder.path / LOG_FILE)
        file_logger.info("results:\n%s", to_markdown(table))
        logger.info("results: %s (.md, .json); per image: %s", paths["csv"], paths["per_image"])
    return RunResult(folder.path, table, paths, str(device), sink.processed, skipped)
