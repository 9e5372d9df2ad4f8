"""`run(options) -> RunResult`: the test.py run as a short story.

Prepare everything (options, data, networks) before touching the disk; claim a run folder
(resuming it only if its fingerprint matches); restore every task's images into a result sink;
write the tables. Under ``torchrun --nproc_per_node=N test.py ...`` every rank prepares the same
run and restores its share of each task's batches (rank r takes batches r, r + N, ...: the
batches one process would make, so every image and every number is the one process's); rank 0
alone claims the folder, writes the status, gathers the other ranks' per-image rows and FID
features, and writes the tables and the log. Without torchrun it is one rank of one.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from uir.common.errors import OptionsError
from uir.common.distributed import DistContext
from uir.evaluation.evaluator import Evaluation, Size, prepare
from uir.evaluation.resume import (
    check_fingerprint, check_points, earlier_points, fingerprint, merged_points, point_identities,
)
from uir.evaluation.run_folder import LOG_FILE, OPTIONS_FILE, RunFolder, log_to_file
from uir.evaluation.sink import FILE_LOGGER, ResultSink, file_logger
from uir.evaluation.sweep import build_sweep
from uir.evaluation.tables import INPUT, Layout, settings_columns, summarize, to_markdown, write_tables
from uir.evaluation.workbook import require_openpyxl, write_workbooks
from uir.metrics.registry import count_column
from uir.evaluation.tasks import TaskData
from uir.options.schema import EvalOptions
from uir.options.sweep import PointKey, SweepPoint, as_runs
from uir.runtime import describe_device
from uir.samplers.registry import SAMPLERS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a run produced: its folder, the results table rows, and the files written."""

    run_dir: Path
    table: list[dict[str, Any]]
    columns: tuple[str, ...]  # the table's
    paths: dict[str, Path]
    device: str
    processed: int  # (image, sweep point) restorations done in this call (by every rank)
    skipped: int  # ... found already done (resume)
    failures: list[str]  # restorations of this call that gave no result, one line each


def run(options: EvalOptions, *, progress: bool = True, source: str | None = None) -> RunResult | None:
    """Evaluate every task x sweep point of `options`; write images, per-image CSV and tables.
    Returns the result on rank 0 (None on the other ranks of a torchrun run).

    Raises `UserError`s (uir.common.errors) with messages meant for the user.
    """
    try:
        ctx = DistContext.from_env(options.restorer.runtime.device)
    except ValueError as exc:
        raise OptionsError(f"torchrun: {exc}") from exc
    with ctx.guard():
        if options.outputs.xlsx:
            require_openpyxl()
        evaluation, tasks, sizes = prepare(options, ctx)
        folder = None
        if ctx.is_main:
            out = options.outputs
            folder = RunFolder.claim(out.results_root, out.name, overwrite=out.overwrite, resume=out.resume)
        try:
            return _run_in(folder, evaluation, tasks, sizes, progress and ctx.is_main, source)
        finally:
            if folder is not None:
                folder.release()


def _open_record(folder: RunFolder, evaluation: Evaluation
                 ) -> tuple[dict[str, Any], dict[str, Any], tuple[SweepPoint, ...]]:
    """Check a resumed folder's fingerprint and points, and save the options (a resumed folder's
    sweep lists every point it holds); returns the fingerprint, every point's identity and the points."""
    options = evaluation.options
    now = fingerprint(options)
    points = options.points
    identities = point_identities(options.restorer, points)
    if folder.resuming:
        status = folder.status()
        check_fingerprint(folder.path, status.get("fingerprint"), now)
        recorded = status.get("points") or {}
        check_points(folder.path, recorded, identities)
        points = merged_points(earlier_points(folder.path, recorded, options.restorer), points)
        identities = {**recorded, **identities}
    resolved = options.to_dict()
    if points != options.points:
        resolved["sweep"] = as_runs(points)
        resolved["sampler"] = options.restorer.sampler.serving([SAMPLERS[p.sampler] for p in points]).to_dict()
    folder.save_options(resolved)
    return now, identities, points


@dataclass(frozen=True)
class RankReport:
    """What each rank hands rank 0 at the end of a run."""

    processed: int
    failures: list[str]
    sets: dict[str, Any]  # each set metric's gathered state (FID features)


def _run_in(folder: RunFolder | None, evaluation: Evaluation, tasks: list[TaskData], sizes: dict[str, list[Size]],
            progress: bool, source: str | None) -> RunResult | None:
    ctx, options = evaluation.ctx, evaluation.options
    device = evaluation.restorer.device
    stamp, identities, points = _open_record(folder, evaluation) if folder is not None else (None, None, None)
    path, mode, points = ctx.broadcast((folder.path, folder.mode, points) if folder is not None else None)
    if folder is None:
        folder = RunFolder(path, mode)
    main = ctx.is_main  # only rank 0 writes the status, the log and the tables
    with (folder.running(device=str(device), ranks=ctx.world_size, fingerprint=stamp, points=identities)
          if main else nullcontext()), \
            (log_to_file(folder.path / LOG_FILE, ("uir", FILE_LOGGER)) if main else nullcontext()):
        if ctx.is_main:
            logger.info("run folder: %s (%s)", folder.path, folder.mode)
            _describe(evaluation, tasks, source)
        skipped = 0
        earlier = tuple(p for p in points if p.folder not in evaluation.samplers)  # a resumed folder's other points
        samplers = {**evaluation.samplers, **build_sweep(options.restorer, earlier, evaluation.restorer.sde)}
        settings = {folder_: sampler.settings() for folder_, sampler in samplers.items()}
        layout = Layout(settings_columns(samplers.values()), evaluation.layout.metrics)
        with ResultSink(folder.path, layout, settings, resume=folder.resuming, suffix=options.outputs.suffix,
                        save_images=options.outputs.save_images, rank=ctx.rank,
                        on_first_result=folder.first_result if ctx.is_main else None) as sink:
            ctx.barrier("per-image log")  # rank 0 has merged what earlier sessions left before the others read it
            sink.load()
            ctx.barrier("per-image log read")  # every rank knows what is done before any adds to it
            try:
                with torch.no_grad():
                    for task in tasks:
                        skipped += evaluation.task(task, sizes[task.name], sink, progress)
            except BaseException as exc:
                logger.error("%s after %d restoration(s); rerun with --resume to continue (finished images are kept)",
                             "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed ({type(exc).__name__}: {exc})",
                             sink.processed)
                raise
        sets = evaluation.scorer.sets if evaluation.scorer is not None else {}
        reports = ctx.gather(RankReport(sink.processed, sink.failures, {n: m.state() for n, m in sets.items()}))
        if not ctx.is_main:
            return None
        sink.collect_ranks(ctx.world_size)
        processed = sum(r.processed for r in reports)
        failures = [line for r in reports for line in r.failures]
        for report in reports[1:]:
            for name, state in report.sets.items():
                sets[name].merge(state)
        folder.first_result()
        table = _table(evaluation, tasks, points, settings, layout, sink)
        meta = {"name": options.outputs.name, "run_dir": str(folder.path), "device": describe_device(device),
                "ranks": ctx.world_size, "crop_border": options.effective_crop_border, "seed": options.restorer.seed,
                "precision": options.restorer.runtime.precision, "batch_size": evaluation.batch_size, "options": source}
        paths = write_tables(folder.path, table, layout.table, meta=meta)
        if options.outputs.xlsx:
            paths.update(write_workbooks(folder.path, table))
        if failures:
            logger.error("%d restoration(s) gave no result; the table counts them as failed", len(failures))
        paths.update(per_image=sink.per_image.path, options=folder.path / OPTIONS_FILE, log=folder.path / LOG_FILE)
        file_logger.info("results:\n%s", to_markdown(table, layout.table))
        logger.info("results: %s (.md, .json); per image: %s", paths["csv"], paths["per_image"])
    return RunResult(folder.path, table, layout.table, paths, str(device), processed, skipped, failures)


def _table(evaluation: Evaluation, tasks: list[TaskData], points: tuple[SweepPoint, ...],
           settings: dict[str, dict[str, Any]], layout: Layout, sink: ResultSink) -> list[dict[str, Any]]:
    """One row per task and point (the input row first when there are metrics), set metrics included."""
    scorer = evaluation.scorer
    rows = []
    for t in tasks:
        if scorer is not None and t.has_gt:
            rows.append({"task": t.name, "sampler": INPUT, "label": INPUT, "nfe": 0})
        rows += [{"task": t.name, "sampler": p.sampler, "label": p.name, "nfe": p.nfe, **settings[p.folder]}
                 for p in points]
    table = summarize(sink.rows(), rows, layout)
    for row in table:
        key = PointKey.of_row(row)
        for name, score in (scorer.set_scores(key, key.task) if scorer is not None else {}).items():
            row[name], row[count_column(name)] = score.value, score.images
            if score.note:
                logger.info("%s %s %s nfe %s: %s", name.upper(), key.task, key.label, key.nfe, score.note)
    return table


def _describe(evaluation: Evaluation, tasks: list[TaskData], source: str | None) -> None:
    o = evaluation.options
    runtime = o.restorer.runtime
    logger.info("options: %s", source or "(given as an object)")
    logger.info("device: %s; precision %s; channels_last %s; compile %s; batch_size %d; num_workers %d",
                describe_device(evaluation.restorer.device), runtime.precision, runtime.channels_last,
                runtime.compile, evaluation.batch_size, o.data.num_workers)
    for task in tasks:
        logger.info("task %s: %d image(s) from %s%s", task.name, len(task.pairs), task.lq_dir,
                    f" (GT {task.gt_dir})" if task.gt_dir else " (no GT: no metrics)")
    if o.sweep.runs is not None:
        sweep = "runs " + ", ".join(f"{p.name} nfe {p.nfe}" for p in evaluation.points)
    else:
        sweep = (f"samplers {', '.join(dict.fromkeys(p.sampler for p in evaluation.points))} x "
                 f"nfe {', '.join(map(str, dict.fromkeys(p.nfe for p in evaluation.points)))}")
    logger.info("sweep: %s; seed %d (+ image index); crop_border %d", sweep, o.restorer.seed, o.effective_crop_border)
    samplers = [SAMPLERS[name] for name in dict.fromkeys(p.sampler for p in evaluation.points)]
    unread = o.restorer.sampler.unread_keys(samplers)
    if unread:
        logger.info("sampler: %s not read by %s (each sampler reads only its own keys)", ", ".join(unread),
                    ", ".join(s.name for s in samplers))


