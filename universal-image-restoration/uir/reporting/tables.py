"""The report's tables: task x label x NFE, each metric with the paper's value beside ours.

One CSV (every row, every metric, the paper's value in ``paper_<metric>`` where it has one) and
one Markdown file (a table per task: FID, LPIPS, PSNR, SSIM with the paper's column beside
each, then seconds per image and the image counts).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from uir.evaluation.tables import to_markdown as table_markdown
from uir.evaluation.tables import write_csv
from uir.metrics.registry import METRICS, count_column, set_metric_names
from uir.reporting.paper import PAPER_METRICS, PaperValues
from uir.reporting.runs import ResultRow

SECONDS_DIGITS = 3


def report_metrics() -> tuple[str, ...]:
    """The metrics of the report: the paper's first (FID, LPIPS, PSNR, SSIM), then every other
    registered metric in registry order."""
    return (*PAPER_METRICS, *(m for m in METRICS.names() if m not in PAPER_METRICS))


def formats() -> dict[str, str]:
    """Cell formats of the Markdown tables: each metric's declared digits, a paper column as its metric."""
    out = {key: f"{{:.{METRICS[m].digits}f}}" for m in report_metrics() for key in (m, f"paper_{m}")}
    return {**out, "sec_per_image": f"{{:.{SECONDS_DIGITS}f}}"}


def csv_columns() -> tuple[str, ...]:
    counts = tuple(count_column(m) for m in set_metric_names())
    return ("task", "label", "nfe",
            *(column for m in report_metrics() for column in ((m, f"paper_{m}") if m in PAPER_METRICS else (m,))),
            "sec_per_image", "images", *counts, "sampler", "run", "paper_source")


def report_rows(rows: Sequence[ResultRow], paper: PaperValues) -> list[dict[str, Any]]:
    """One dict per row with our metrics, the paper's beside them, timing, counts and sources."""
    table = []
    for row in rows:
        out: dict[str, Any] = {"task": row.task, "label": row.label, "nfe": row.nfe, **row.metrics,
                               "sec_per_image": row.sec_per_image, "images": row.images,
                               **{count_column(m): n for m, n in row.counts.items()}, "sampler": row.sampler,
                               "run": row.run}
        sources = []
        for metric in PAPER_METRICS:
            published = None if row.is_input else paper.get(row.task, row.label, metric, row.nfe)
            out[f"paper_{metric}"] = published.value if published else None
            if published and published.source not in sources:
                sources.append(published.source)
        out["paper_source"] = " | ".join(sources) or None
        table.append(out)
    return table


def write_report_csv(path: str | os.PathLike, table: Sequence[dict[str, Any]]) -> None:
    write_csv(path, table, csv_columns())


def _markdown_columns() -> list[tuple[str, str]]:
    """(header, key) of a task's Markdown table."""
    columns = [("label", "label"), ("NFE", "nfe")]
    for metric in PAPER_METRICS:
        title = METRICS[metric].title
        columns += [(title, metric), (f"{title} (paper)", f"paper_{metric}")]
    counts = [(f"{METRICS[m].title} images", count_column(m)) for m in set_metric_names()]
    return columns + [("s / image", "sec_per_image"), ("images", "images"), *counts]


def to_markdown(table: Sequence[dict[str, Any]]) -> str:
    """A section per task; "-" where there is no value (no weights, no published number)."""
    columns = _markdown_columns()
    lines = ["# MR Sampler paper report", "",
             "Ours beside the paper's published value (\"(paper)\"; from uir/reporting/paper_values.yml) "
             "where it has one; the `input` row scores the LQ image itself.", ""]
    for task in dict.fromkeys(row["task"] for row in table):
        rows = [r for r in table if r["task"] == task]
        lines += [f"## {task}", "", table_markdown(rows, [k for _, k in columns], titles={k: h for h, k in columns},
                                                   formats=formats()).rstrip("\n")]
        sources = list(dict.fromkeys(r["paper_source"] for r in table if r["task"] == task and r["paper_source"]))
        lines += [""] + [f"Paper values: {s}." for s in sources] + ([""] if sources else [])
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["csv_columns", "formats", "report_metrics", "report_rows", "to_markdown", "write_report_csv"]
