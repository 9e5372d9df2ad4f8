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
from uir.reporting.paper import PAPER_METRICS, PaperValues
from uir.reporting.runs import METRICS, ResultRow

METRIC_TITLES = {"fid": "FID", "lpips": "LPIPS", "psnr": "PSNR", "ssim": "SSIM", "psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y"}
DIGITS = {"fid": 2, "lpips": 4, "psnr": 2, "ssim": 4, "psnr_y": 2, "ssim_y": 4, "sec_per_image": 3}
# Cell formats of the Markdown tables: a paper column as its metric.
FORMATS = {key: f"{{:.{d}f}}" for m, d in DIGITS.items() for key in (m, f"paper_{m}")}
CSV_COLUMNS = (
    "task", "label", "nfe",
    *(column for m in METRICS for column in ((m, f"paper_{m}") if m in PAPER_METRICS else (m,))),
    "sec_per_image", "images", "fid_images", "sampler", "run", "paper_source",
)


def report_rows(rows: Sequence[ResultRow], paper: PaperValues) -> list[dict[str, Any]]:
    """One dict per row with our metrics, the paper's beside them, timing, counts and sources."""
    table = []
    for row in rows:
        out: dict[str, Any] = {"task": row.task, "label": row.label, "nfe": row.nfe, **row.metrics,
                               "sec_per_image": row.sec_per_image, "images": row.images,
                               "fid_images": row.fid_images, "sampler": row.sampler, "run": row.run}
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
    write_csv(path, table, CSV_COLUMNS)


def _markdown_columns() -> list[tuple[str, str]]:
    """(header, key) of a task's Markdown table."""
    columns = [("label", "label"), ("NFE", "nfe")]
    for metric in PAPER_METRICS:
        columns += [(METRIC_TITLES[metric], metric), (f"{METRIC_TITLES[metric]} (paper)", f"paper_{metric}")]
    return columns + [("s / image", "sec_per_image"), ("images", "images"), ("FID images", "fid_images")]


def to_markdown(table: Sequence[dict[str, Any]]) -> str:
    """A section per task; "-" where there is no value (no weights, no published number)."""
    columns = _markdown_columns()
    lines = ["# MR Sampler paper report", "",
             "Ours beside the paper's published value (\"(paper)\"; from uir/reporting/paper_values.yml) "
             "where it has one; the `input` row scores the LQ image itself.", ""]
    for task in dict.fromkeys(row["task"] for row in table):
        rows = [r for r in table if r["task"] == task]
        lines += [f"## {task}", "", table_markdown(rows, [k for _, k in columns], titles={k: h for h, k in columns},
                                                   formats=FORMATS).rstrip("\n")]
        sources = list(dict.fromkeys(r["paper_source"] for r in table if r["task"] == task and r["paper_source"]))
        lines += [""] + [f"Paper values: {s}." for s in sources] + ([""] if sources else [])
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["CSV_COLUMNS", "METRIC_TITLES", "report_rows", "to_markdown", "write_report_csv"]
