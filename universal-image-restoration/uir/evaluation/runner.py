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
import yaml

from uir.common.errors import OptionsError
from uir.common.distributed import DistContext
from uir.evaluation.evaluator import Evaluation, Size, prepare
from uir.evaluation.resume import as_runs, check_fingerprint, fingerprint, merged_entries, recorded_entries
from uir.evaluation.run_folder import LOG_FILE, OPTIONS_FILE, RunFolder, log_to_file
from uir.evaluation.sink import FILE_LOGGER, ResultSink, file_logger
from uir.evaluation.tables import INPUT, sampler_settings, summarize, to_markdown, write_tables
from uir.evaluation.tasks import TaskData
from uir.options.schema import EvalOptions, SweepEntry
from uir.runtime import describe_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a run produced: its folder, the results table rows, and the files written."""

    run_dir: Path
    table: list[dict[str, Any]]
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
        ctx = DistContext.from_env(options.runtime.device)
    except ValueError as exc:
        raise OptionsError(f"torchrun: {exc}") from exc
    with ctx.guard():
        evaluation, tasks, sizes = prepare(options, ctx)
        folder = None
        if ctx.is_main:
            folder = RunFolder.claim(options.results_root, options.name, overwrite=options.overwrite,
                                     resume=options.resume)
        try:
            return _run_in(folder, evaluation, tasks, sizes, progress and ctx.is_main, source)
        finally:
            if folder is not None:
                folder.release()


def _open_record(folder: RunFolder, options: EvalOptions) -> tuple[dict[str, Any], tuple[SweepEntry, ...]]:
    """Check a resumed folder's fingerprint and save the options (a resumed folder's sweep lists
    every point it holds); returns the fingerprint and those points."""
    now = fingerprint(options)
    entries = options.runs
    if folder.resuming:
        check_fingerprint(folder.path, folder.status().get("fingerprint"), now)
        saved = folder.path / OPTIONS_FILE
        earlier = recorded_entries(yaml.safe_load(saved.read_text(encoding="utf-8")) if saved.is_file() else None)
        entries = merged_entries(earlier, entries)
    resolved = options.to_dict()
    if entries != options.runs:
        resolved["sweep"] = as_runs(entries)
    folder.save_options(resolved)
    return now, entries


def _run_in(folder: RunFolder | None, evaluation: Evaluation, tasks: list[TaskData], sizes: dict[str, list[Size]],
            progress: bool, source: str | None) -> RunResult | None:
    ctx, options = evaluation.ctx, evaluation.options
    device = evaluation.restorer.device
    stamp, entries = _open_record(folder, options) if folder is not None else (None, None)
    path, mode, entries = ctx.broadcast((folder.path, folder.mode, entries) if folder is not None else None)
    if folder is None:
        folder = RunFolder(path, mode)
    main = ctx.is_main  # only rank 0 writes the status, the log and the tables
    with (folder.running(device=str(device), ranks=ctx.world_size, fingerprint=stamp) if main else nullcontext()), \
            (log_to_file(folder.path / LOG_FILE, ("uir", FILE_LOGGER)) if main else nullcontext()):
        if ctx.is_main:
            logger.info("run folder: %s (%s)", folder.path, folder.mode)
            _describe(evaluation, tasks, source)
        skipped = 0
        with ResultSink(folder.path, resume=folder.resuming, suffix=options.suffix, save_images=options.save_images,
                        rank=ctx.rank, on_first_result=folder.first_result if ctx.is_main else None) as sink:
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
        fid = evaluation.scorer.fid if evaluation.scorer is not None else None
        parts = ctx.gather((sink.processed, sink.failures, fid.features if fid is not None else None))
        if not ctx.is_main:
            return None
        sink.collect_ranks(ctx.world_size)
        processed = sum(p[0] for p in parts)
        failures = [line for p in parts for line in p[1]]
        for p in parts[1:]:
            if fid is not None and p[2]:
                fid.merge(p[2])
        folder.first_result()
        table = _table(evaluation, tasks, entries, sink)
        meta = {"name": options.name, "run_dir": str(folder.path), "device": describe_device(device),
                "ranks": ctx.world_size, "crop_border": options.effective_crop_border, "seed": options.seed,
                "precision": options.runtime.precision, "batch_size": evaluation.batch_size, "options": source}
        paths = write_tables(folder.path, table, meta=meta)
        if failures:
            logger.error("%d restoration(s) gave no result; the table counts them as failed", len(failures))
        paths.update(per_image=sink.per_image.path, options=folder.path / OPTIONS_FILE, log=folder.path / LOG_FILE)
        file_logger.info("results:\n%s", to_markdown(table))
        logger.info("results: %s (.md, .json); per image: %s", paths["csv"], paths["per_image"])
    return RunResult(folder.path, table, paths, str(device), processed, skipped, failures)


def _table(evaluation: Evaluation, tasks: list[TaskData], entries: tuple[SweepEntry, ...],
           sink: ResultSink) -> list[dict[str, Any]]:
    """One row per task and point (the input row first when there are metrics), FID included."""
    options, scorer = evaluation.options, evaluation.scorer
    points = []
    for t in tasks:
        if scorer is not None and t.has_gt:
            points.append({"task": t.name, "sampler": INPUT, "label": INPUT, "nfe": 0})
        points += [{"task": t.name, "sampler": e.sampler, "label": e.name, "nfe": e.nfe,
                    **sampler_settings(e.sampler, options.sampler_config(e))} for e in entries]
    table = summarize(sink.rows(), points)
    for row in table:
        score = scorer.fid_score((row["task"], row["label"], row["nfe"]), row["task"]) if scorer else None
        if score is not None:
            row["fid"], row["fid_images"] = score.value, score.images
            if score.note:
                logger.info("FID %s %s nfe %s: %s", row["task"], row["label"], row["nfe"], score.note)
    return table


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


