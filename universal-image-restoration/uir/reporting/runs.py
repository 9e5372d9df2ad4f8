"""Reading finished run folders' ``results.json`` into one row per (task, label, NFE).

A row's label is its ``label`` column (a sampler variant such as "MR Sampler-2") or, without
one, its sampler name. A row with sampler ``input`` holds the metrics of the LQ image itself.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uir.metrics.registry import METRICS, count_column, set_metric_names

RESULTS_FILE = "results.json"
INPUT_SAMPLER = "input"
REQUIRED_COLUMNS = ("task", "sampler", "nfe")


class ReportError(ValueError):
    """A run folder cannot be reported (missing or malformed results)."""


@dataclass(frozen=True)
class ResultRow:
    """One results-table row of a run: metrics are None where the run has no value."""

    run: str  # the run folder as given
    task: str
    label: str
    sampler: str
    nfe: int | None  # None for the input row
    metrics: Mapping[str, float | None]
    sec_per_image: float | None
    images: int | None
    counts: Mapping[str, int | None]  # images each set metric (FID) used

    @property
    def is_input(self) -> bool:
        return self.sampler == INPUT_SAMPLER

    @property
    def key(self) -> tuple[str, str, int | None]:
        return (self.task, self.label, self.nfe)


def _number(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError(f"{where}: expected a number or null, got {value!r}")
    return None if math.isnan(value) else float(value)


def _count(value: Any, where: str) -> int | None:
    number = _number(value, where)
    return None if number is None else int(number)


def _row(run: Path, index: int, raw: Any) -> ResultRow:
    where = f"{run / RESULTS_FILE}: rows[{index}]"
    if not isinstance(raw, Mapping):
        raise ReportError(f"{where}: expected an object, got {type(raw).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in raw]
    if missing:
        raise ReportError(f"{where}: missing {', '.join(missing)}; is this a results.json written by test.py?")
    sampler = str(raw["sampler"])
    nfe = _count(raw["nfe"], f"{where}.nfe")
    return ResultRow(
        run=str(run),
        task=str(raw["task"]),
        label=str(raw.get("label") or sampler),
        sampler=sampler,
        nfe=None if sampler == INPUT_SAMPLER else nfe,
        metrics={m: _number(raw.get(m), f"{where}.{m}") for m in METRICS.names()},
        sec_per_image=_number(raw.get("sec_per_image"), f"{where}.sec_per_image"),
        images=_count(raw.get("images"), f"{where}.images"),
        counts={m: _count(raw.get(count_column(m)), f"{where}.{count_column(m)}") for m in set_metric_names()},
    )


def read_run(run_dir: str | os.PathLike) -> list[ResultRow]:
    """The rows of one finished run folder; `ReportError` saying what is wrong otherwise."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ReportError(f"{run}: no such run folder")
    path = run / RESULTS_FILE
    if not path.is_file():
        raise ReportError(f"{run}: not a finished run folder (no {RESULTS_FILE}; test.py writes it when a run ends)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read it as JSON: {exc}") from exc
    rows = data.get("rows") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        raise ReportError(f"{path}: expected an object with a list 'rows'")
    if not rows:
        raise ReportError(f"{path}: the results table has no rows")
    return [_row(run, i, raw) for i, raw in enumerate(rows)]


def combine(runs: Iterable[Sequence[ResultRow]]) -> tuple[list[ResultRow], list[str]]:
    """All runs' rows, one per (task, label, NFE): a later run's row replaces an earlier one's
    (each replacement is noted). Order: tasks and labels as first seen, input first, NFE up."""
    chosen: dict[tuple[str, str, int | None], ResultRow] = {}
    notes = []
    for rows in runs:
        for row in rows:
            if row.key in chosen and chosen[row.key].run != row.run:
                earlier = chosen[row.key].run
                notes.append(f"{row.task} / {row.label} / NFE {row.nfe}: run {row.run} replaces run {earlier}")
            chosen[row.key] = row
    tasks = list(dict.fromkeys(r.task for r in chosen.values()))
    labels = list(dict.fromkeys(r.label for r in chosen.values()))

    def order(row: ResultRow) -> tuple[int, int, int, int]:
        return (tasks.index(row.task), 0 if row.is_input else 1, labels.index(row.label), row.nfe or 0)

    return sorted(chosen.values(), key=order), notes


def read_runs(run_dirs: Sequence[str | os.PathLike]) -> tuple[list[ResultRow], list[str]]:
    """`combine` of every run folder's rows."""
    if not run_dirs:
        raise ReportError("no run folder given")
    return combine(read_run(d) for d in run_dirs)


__all__ = ["INPUT_SAMPLER", "RESULTS_FILE", "ReportError", "ResultRow", "combine", "read_run", "read_runs"]
