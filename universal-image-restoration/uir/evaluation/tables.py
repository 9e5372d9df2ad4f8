"""The per-image CSV and the results table (CSV, Markdown, JSON) of a run.

The table has one row per (task, sampler, label, nfe): the sampler's settings, the mean of each
per-image metric over the images, each set metric (FID) with the number of images it used, the
mean sampling time per image and the image counts. It is always computed from the per-image
rows, so a resumed run's table covers the images of every session. Which columns a run has
(`Layout`) follows from its samplers' settings (`BaseSampler.settings`) and its metrics
(`uir.metrics.METRICS`): nothing here names a sampler or a metric.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uir.metrics.registry import METRICS, count_column, image_metric_names, set_metric_names
from uir.options.sweep import INPUT_LABEL, PointKey
from uir.samplers.registry import SAMPLERS

logger = logging.getLogger(__name__)

KEY_COLUMNS = ("task", "sampler", "label", "nfe")
# The `input` row of a task: the LQ images scored against GT (is a restoration better than its input?).
INPUT = INPUT_LABEL
_INT_COLUMNS = {"nfe", "order", "model_calls", "seed", "batch_size", "images", "failed"}
_FLOAT_COLUMNS = {"seconds", "sec_per_image"}
_MARKDOWN_DIGITS = 4


def settings_columns(samplers: Iterable[Any]) -> tuple[str, ...]:
    """The settings columns of built samplers: each one's `settings()` keys, samplers in registry order."""
    order = {name: i for i, name in enumerate(SAMPLERS.names())}
    ranked = sorted(samplers, key=lambda s: order.get(s.name, len(order)))
    return tuple(dict.fromkeys(k for s in ranked for k in s.settings()))


@dataclass(frozen=True)
class Layout:
    """The columns of a run's per-image CSV and results table."""

    settings: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()  # selected metric names, registry order

    @property
    def image_metrics(self) -> tuple[str, ...]:
        return image_metric_names(self.metrics)

    @property
    def set_metrics(self) -> tuple[str, ...]:
        return set_metric_names(self.metrics)

    @property
    def per_image(self) -> tuple[str, ...]:
        return (*KEY_COLUMNS, "image", "output", *self.settings, *self.image_metrics, "seconds", "model_calls", "seed",
                "batch_size", "error")

    @property
    def table(self) -> tuple[str, ...]:
        sets = tuple(c for m in self.set_metrics for c in (m, count_column(m)))
        return (*KEY_COLUMNS, *self.settings, *self.image_metrics, *sets, "sec_per_image", "model_calls", "images",
                "failed")


@dataclass(frozen=True)
class ImageRow:
    """One line of the per-image CSV: a restored image of a point (or an LQ image, the `input`
    row, or an image that gave no result, with its `error`)."""

    task: str
    sampler: str
    label: str
    nfe: int
    image: str
    output: str = ""  # the PNG it scored, relative to the run folder ("" without one)
    settings: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    seconds: float | None = None
    model_calls: int | None = None
    seed: int | None = None
    batch_size: int | None = None
    error: str | None = None

    def cells(self) -> dict[str, Any]:
        return {"task": self.task, "sampler": self.sampler, "label": self.label, "nfe": self.nfe, "image": self.image,
                "output": self.output, **self.settings, **self.metrics, "seconds": self.seconds,
                "model_calls": self.model_calls, "seed": self.seed, "batch_size": self.batch_size, "error": self.error}


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


def column_type(column: str) -> type | None:
    """int, float or None (text) for a column of the per-image CSV or the results table."""
    if column in _INT_COLUMNS or (column.endswith("_images") and column.removesuffix("_images") in METRICS):
        return int
    if column in _FLOAT_COLUMNS or column in METRICS:
        return float
    return None


def _parse_cell(column: str, text: str) -> Any:
    if text == "":
        return None
    kind = column_type(column)
    return kind(text) if kind is not None else text


def parse_row(row: Mapping[str, str | None]) -> dict[str, Any]:
    """A CSV row read back: numbers parsed exactly; a row with too few cells is an error."""
    if None in row.values() or None in row:
        raise ValueError("the row has a different number of cells than the header")
    return {k: _parse_cell(k, v) for k, v in row.items()}


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a per-image or results CSV written here, with numbers parsed back exactly."""
    with open(path, newline="", encoding="utf-8") as f:
        return [parse_row(row) for row in csv.DictReader(f)]


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_format_cell(row.get(c)) for c in columns])


def append_csv_row(file, row: Mapping[str, Any], columns: Sequence[str]) -> None:
    csv.writer(file).writerow([_format_cell(row.get(c)) for c in columns])


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def summarize(rows: Iterable[Mapping[str, Any]], points: Sequence[Mapping[str, Any]], layout: Layout
              ) -> list[dict[str, Any]]:
    """The results table: for each point (its key and settings columns), the means of its per-image
    rows; `images` counts the restored images, `failed` those that gave no result (they have no
    metric). A metric that not every image of a point has (its weights were missing in part of a
    resumed run) is left empty, with a warning, rather than averaged over some of the images."""
    by_point: dict[PointKey, list[Mapping[str, Any]]] = {}
    failed: dict[PointKey, int] = {}
    for row in rows:
        key = PointKey.of_row(row)
        if row.get("error"):
            failed[key] = failed.get(key, 0) + 1
        else:
            by_point.setdefault(key, []).append(row)
    table = []
    for point in points:
        key = PointKey.of_row(point)
        group = by_point.get(key, [])
        out: dict[str, Any] = {c: point.get(c) for c in layout.table}  # set metrics: filled in by the run
        for metric in layout.image_metrics:
            values = [r[metric] for r in group if r.get(metric) is not None]
            if values and len(values) < len(group):
                logger.warning("%s / %s / nfe %s: %s is missing for %d of %d images (its weights were not available "
                               "in every part of the run); the %s cell is left empty", key.task, key.label, key.nfe,
                               metric, len(group) - len(values), len(group), metric)
                values = []
            out[metric] = _mean(values)
        out["sec_per_image"] = _mean([r["seconds"] for r in group if r.get("seconds") is not None])
        calls = {r["model_calls"] for r in group if r.get("model_calls") is not None}
        out["model_calls"] = calls.pop() if len(calls) == 1 else None
        out["images"] = len(group)
        out["failed"] = failed.get(key, 0)
        table.append(out)
    return table


def markdown_cell(value: Any, fmt: str = "{}") -> str:
    """A table cell: `-` for None, yes / NO for a bool, inf / nan as such, else `fmt`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return fmt.format(value)


def results_formats(columns: Sequence[str]) -> dict[str, str]:
    """The results table's Markdown formats: metrics and seconds to four decimals."""
    return {c: f"{{:.{_MARKDOWN_DIGITS}f}}" for c in columns if c in METRICS or c == "sec_per_image"}


def to_markdown(table: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
                titles: Mapping[str, str] | None = None, formats: Mapping[str, str] | None = None) -> str:
    """A Markdown table of `columns` (keys of each row; default: those of the first row), headed by
    `titles` (default: the keys) and formatted by `formats` (a `str.format` pattern per key;
    default: the results table's)."""
    columns = list(columns if columns is not None else (table[0] if table else ()))
    titles = titles or {}
    formats = results_formats(columns) if formats is None else formats
    lines = ["| " + " | ".join(titles.get(c, c) for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(markdown_cell(row.get(c), formats.get(c, "{}")) for c in columns) + " |" for row in table]
    return "\n".join(lines) + "\n"


def write_tables(run_dir: str | os.PathLike, table: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
                 meta: Mapping[str, Any]) -> dict[str, Path]:
    """`results.csv`, `results.md` and `results.json` (rows plus `meta`) in `run_dir`."""
    run_dir = Path(run_dir)
    paths = {"csv": run_dir / "results.csv", "md": run_dir / "results.md", "json": run_dir / "results.json"}
    write_csv(paths["csv"], table, columns)
    paths["md"].write_text(to_markdown(table, columns), encoding="utf-8")
    payload = {"meta": dict(meta), "columns": list(columns), "rows": [dict(r) for r in table]}
    paths["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return paths
