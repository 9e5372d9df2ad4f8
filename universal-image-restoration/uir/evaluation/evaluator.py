"""The evaluation of one rank: `prepare(options, ctx)` checks and loads everything, then
`Evaluation.task` restores a task's images (its share of the batches under torchrun).

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

import torch
from torch import Tensor
from tqdm.auto import tqdm

from uir.common.errors import DataError
from uir.data.paired import PairedImageDataset, SizeGroupedBatchSampler, image_size, make_loader
from uir.evaluation.backoff import OomBackoff
from uir.common.distributed import DistContext
from uir.evaluation.scoring import Scorer
from uir.evaluation.sink import Restored, ResultSink
from uir.evaluation.tables import INPUT, Layout, settings_columns
from uir.evaluation.sweep import build_sweep, load_restorer
from uir.evaluation.tasks import TaskData, resolve_tasks
from uir.evaluation.trajectory import TrajectoryRecorder, select_images, trajectory_path
from uir.metrics import quantize_to_uint8
from uir.metrics.reference import validate_crop
from uir.options.schema import EvalOptions
from uir.options.sweep import PointKey, SweepPoint
from uir.restoration import Restorer
from uir.runtime import describe_device, synchronize
from uir.samplers.base import Sampler
from uir.sde.irsde import IRSDE

logger = logging.getLogger(__name__)
Size = tuple[int, int]


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
    """A prepared run: the restorer, the sweep points and their samplers (by folder), the scorer,
    the batch size and the columns, on one rank of `ctx` (a one-process context without torchrun)."""

    options: EvalOptions
    restorer: Restorer
    points: tuple[SweepPoint, ...]
    samplers: dict[str, Sampler]
    scorer: Scorer | None
    batch_size: int
    ctx: DistContext
    trajectories: dict[str, frozenset[int]] | None = None  # each task's images whose trajectories are kept

    @property
    def layout(self) -> Layout:
        metrics = self.options.scoring.selected if self.scorer is not None else ()
        return Layout(settings_columns(self.samplers.values()), metrics)

    def settings(self) -> dict[str, dict]:
        """Each point's settings columns, by folder."""
        return {folder: sampler.settings() for folder, sampler in self.samplers.items()}

    def recorder(self, task: TaskData, point: SweepPoint, indices: list[int], seeds: list[int], sink: ResultSink
                 ) -> TrajectoryRecorder | None:
        """The per-step callback that keeps the trajectories of the batch's chosen images (None: none chosen)."""
        chosen = (self.trajectories or {}).get(task.name, frozenset())
        rows = {k: i for k, i in enumerate(indices) if i in chosen}
        if not rows:
            return None
        return TrajectoryRecorder(sink.run_dir, task, point, self.samplers[point.folder], self.restorer.sde, rows,
                                  dict(enumerate(seeds)), self.options.trajectory.predictions)

    def restore(self, task: TaskData, point: SweepPoint, indices: list[int], lq: Tensor, gt: Tensor | None,
                gt_u8: Tensor | None, contexts: tuple[Tensor | None, Tensor | None], sink: ResultSink) -> Restored:
        device = self.restorer.device
        seeds = [self.options.restorer.seed + i for i in indices]
        recorder = self.recorder(task, point, indices, seeds, sink)
        synchronize(device)
        start = time.perf_counter()
        try:
            result = self.restorer.restore(lq, seeds, self.samplers[point.folder], contexts, callback=recorder)
            errors = result.failures()  # synchronises
        except BaseException:
            if recorder is not None:
                recorder.discard()
            raise
        seconds = (time.perf_counter() - start) / len(seeds)
        if recorder is not None:  # after the timing: writing the trajectory is not sampling time
            recorder.finish(errors, result.model_calls)
        out_u8 = quantize_to_uint8(result.x)
        metrics = {}
        if self.scorer is not None and gt_u8 is not None:
            metrics = self.scorer(result.x, gt, out_u8, gt_u8)
            keep = [k for k in range(len(seeds)) if k not in errors]
            if keep:
                self.scorer.add(point.key(task.name), [indices[k] for k in keep], out_u8[keep])
        images = out_u8.permute(0, 2, 3, 1).cpu().numpy()
        return Restored(images, metrics, seconds, result.model_calls, seeds, errors)

    def batch(self, task: TaskData, batch: dict, pending: dict[int, set[str]], sink: ResultSink, backoff: OomBackoff,
              bar) -> None:
        """Score the batch's LQ images (the `input` row) and restore them with every sweep point,
        as far as they are still pending. A point's batch that runs out of GPU memory is halved
        and retried (`backoff`); an image that does not fit alone is recorded as failed."""
        if batch.get("error"):
            raise DataError(batch["error"])
        device = self.restorer.device
        indices = batch["index"].tolist()
        lq = batch["lq"].to(device, non_blocking=True)
        gt = batch["gt"].to(device, non_blocking=True) if batch["gt"] is not None and self.scorer is not None else None
        gt_u8 = quantize_to_uint8(gt) if gt is not None else None
        contexts = self.restorer.contexts(lq) if any(pending[i] - {INPUT} for i in indices) else (None, None)
        rows_of = {i: k for k, i in enumerate(indices)}

        def take(t: Tensor | None, chosen: list[int]) -> Tensor | None:
            if t is None or len(chosen) == len(indices):
                return t
            return t.index_select(0, torch.tensor([rows_of[i] for i in chosen], device=device))

        inputs = [i for i in indices if INPUT in pending[i]]
        if inputs:
            lq_in = take(lq, inputs)
            sink.record_input(task, inputs, self.scorer(lq_in, take(gt, inputs), gt_u8=take(gt_u8, inputs)))
        for point in self.points:
            chosen = [i for i in indices if point.folder in pending[i]]
            if not chosen:
                continue

            def attempt(sub: list[int], point: SweepPoint = point) -> None:
                restored = self.restore(task, point, sub, take(lq, sub), take(gt, sub), take(gt_u8, sub),
                                        (take(contexts[0], sub), take(contexts[1], sub)), sink)
                sink.record(task, point, sub, restored)

            failed = len(backoff.failures)
            backoff.run(attempt, chosen, key=tuple(lq.shape[-2:]))
            for failure in backoff.failures[failed:]:
                sink.record_error(task, point, failure.index, failure.message)
            bar.update(len(chosen))
        for i in indices:
            pending[i].clear()

    def considered(self, task: TaskData) -> list[int]:
        """The images of `task` the run restores: all of them, or with `trajectory.only` the chosen ones."""
        if self.options.trajectory is not None and self.options.trajectory.only:
            return sorted((self.trajectories or {}).get(task.name, ()))
        return list(range(len(task.pairs)))

    def _pending(self, task: TaskData, sink: ResultSink) -> dict[int, set[str]]:
        """For each image, the sweep points (folders), and `input`, it still needs."""
        done = sink.done()
        scored = self.scorer is not None and task.has_gt
        input_key = PointKey(task.name, INPUT, 0)
        considered = set(self.considered(task))
        return {i: {p.folder for p in self.points if (p.key(task.name), pair.name) not in done}
                   | ({INPUT} if scored and (input_key, pair.name) not in done else set())
                   if i in considered else set()
                for i, pair in enumerate(task.pairs)}

    def _missing_trajectories(self, task: TaskData, pending: dict[int, set[str]], run_dir) -> None:
        """Warn about chosen images restored by an earlier session that kept no trajectory (resume)."""
        chosen = (self.trajectories or {}).get(task.name, frozenset())
        missing = [f"{task.pairs[i].name} ({p.folder})" for i in sorted(chosen) for p in self.points
                   if p.folder not in pending[i] and not trajectory_path(run_dir, task.name, p, task.pairs[i].name).is_file()]
        if missing and self.ctx.is_main:
            logger.warning("[%s] trajectory: %d restoration(s) were done by an earlier session without keeping their "
                           "trajectory, and are not redone: %s; start a new run to record them", task.name,
                           len(missing), ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))

    def _sets_from_disk(self, task: TaskData, sink: ResultSink) -> None:
        """On the main rank, for the set metrics (FID): the task's GT statistics, and the features of
        what is already on disk: the LQ files (the input row) and the PNGs of earlier sessions."""
        sets = self.scorer.sets if self.scorer is not None else {}
        if not sets or not task.has_gt or not self.ctx.is_main:
            return
        index = {pair.name: i for i, pair in enumerate(task.pairs)}
        rows = sink.rows()
        considered = self.considered(task)
        for metric in sets.values():
            metric.reference_folder(task.name, task.gt_dir)
            metric.add_files(PointKey(task.name, INPUT, 0), considered, [task.pairs[i].lq for i in considered])
            for point in self.points:
                done = [r for r in rows if r["output"] and r["image"] in index
                        and PointKey.of_row(r) == point.key(task.name)]
                metric.add_files(point.key(task.name), [index[r["image"]] for r in done],
                                 [sink.run_dir / r["output"] for r in done])

    def task(self, task: TaskData, sizes: list[Size], sink: ResultSink, progress: bool) -> int:
        """Restore every image of `task` that the run has no record of (this rank's share of the
        batches: the same batches as in one process); returns how many were skipped."""
        pending = self._pending(task, sink)
        self._sets_from_disk(task, sink)
        self._missing_trajectories(task, pending, sink.run_dir)
        total = sum(len(p - {INPUT}) for p in pending.values())
        skipped = len(self.considered(task)) * len(self.points) - total
        if skipped and self.ctx.is_main:
            logger.info("[%s] %d restoration(s) already done: skipped", task.name, skipped)
        todo = [i for i in range(len(task.pairs)) if pending[i]]
        batches = self.ctx.shard(list(SizeGroupedBatchSampler(sizes, self.batch_size, todo)))
        if not batches:
            return skipped
        pairs = task.pairs if self.scorer is not None else [replace(p, gt=None) for p in task.pairs]
        loader = make_loader(PairedImageDataset(pairs, errors="return"), batches,
                             num_workers=min(self.options.data.num_workers, len(batches)),
                             pin_memory=self.restorer.device.type == "cuda")
        backoff = OomBackoff(lambda i: (task.pairs[i].name, *sizes[i]), tile=self.options.restorer.tile)
        mine = sum(len(pending[i] - {INPUT}) for batch in batches for i in batch)
        sink.wait_idle()  # no PNG write in flight while the loader's worker processes fork
        with tqdm(total=mine, desc=task.name, unit="img", disable=not progress, dynamic_ncols=True) as bar:
            for batch in loader:
                self.ctx.check()
                self.batch(task, batch, pending, sink, backoff, bar)
        return skipped


def _batch_size(options: EvalOptions, restorer: Restorer, sizes: list[Size]) -> int:
    if options.restorer.batch_size != "auto":
        return int(options.restorer.batch_size)
    height, width = max(sizes, key=lambda s: s[0] * s[1])
    batch_size = restorer.auto_batch_size(height, width)
    logger.info("batch_size auto: %d image(s) per batch (largest image %dx%d, %s)", batch_size, height, width,
                restorer.device)
    return batch_size


def _warm_up(options: EvalOptions, restorer: Restorer, batch_size: int, sizes: list[Size]) -> None:
    """On CUDA or with torch.compile, run the network once at the most common image size before
    timing, so that kernel selection and compilation are not billed to the first images."""
    if restorer.device.type != "cuda" and not options.restorer.runtime.compile:
        return
    (height, width), _ = Counter(sizes).most_common(1)[0]
    start = time.perf_counter()
    restorer.probe(batch_size, height, width)
    synchronize(restorer.device)
    logger.info("warm-up pass (%dx%d, batch %d): %.1f s", height, width, batch_size, time.perf_counter() - start)


def prepare(options: EvalOptions, ctx: DistContext) -> tuple[Evaluation, list[TaskData], dict[str, list[Size]]]:
    """Everything a run needs, checked before its folder is touched: device (the rank's GPU under
    torchrun), test sets, sweep, metrics, network, DA-CLIP and the batch size."""
    device = ctx.device if ctx.is_distributed else options.restorer.runtime.resolve_device()
    options = options.for_device(device)
    logger.info("device: %s", describe_device(device))
    crop = options.effective_crop_border
    metrics = options.scoring.selected
    tasks = resolve_tasks(options.data)
    trajectories = select_images(options.trajectory, tasks) if options.trajectory is not None else None
    sizes = {task.name: image_sizes(task, crop if metrics else None) for task in tasks}
    sde = IRSDE.from_settings(options.restorer.sde)
    points = options.points
    samplers = build_sweep(options.restorer, points, sde)
    scorer = None  # before the networks: a weights file named but unusable stops the run at once
    if metrics:
        scorer = Scorer.load(metrics, crop, device, {n: options.scoring.weights_file(n) for n in metrics})
    restorer = load_restorer(options.restorer, device=device, sde=sde)
    every_size = [s for task_sizes in sizes.values() for s in task_sizes]
    batch_size = _batch_size(options, restorer, every_size)
    _warm_up(options, restorer, batch_size, every_size)
    return Evaluation(options, restorer, points, samplers, scorer, batch_size, ctx, trajectories), tasks, sizes
