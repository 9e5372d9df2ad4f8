"""The whole report of finished runs: a Figure 2 PNG per task, Markdown and CSV tables."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uir.reporting.figures import draw_figure2
from uir.reporting.paper import NO_PAPER_VALUES, PAPER_VALUES_FILE, load_paper_values
from uir.reporting.runs import ReportError, read_runs
from uir.reporting.tables import report_rows, to_markdown, write_report_csv

REPORT_DIR_NAME = "paper_report"
TABLES_MD = "paper_tables.md"
TABLES_CSV = "paper_tables.csv"


@dataclass
class ReportFiles:
    figures: list[Path]
    markdown: Path
    csv: Path
    notes: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[Path]:
        return [*self.figures, self.markdown, self.csv]


def figure_name(task: str) -> str:
    return "figure2_" + re.sub(r"[^\w.-]+", "_", task) + ".png"


def default_report_dir(run_dirs: Sequence[str | os.PathLike]) -> Path:
    """``paper_report`` beside the first run folder, or ``paper_report_2``, ... when that one is taken."""
    parent = Path(run_dirs[0]).resolve().parent
    n, folder = 1, parent / REPORT_DIR_NAME
    while folder.exists() and any(folder.iterdir()):
        n += 1
        folder = parent / f"{REPORT_DIR_NAME}_{n}"
    return folder


def planned_files(out_dir: Path, tasks: Sequence[str]) -> list[Path]:
    return [*(out_dir / figure_name(t) for t in tasks), out_dir / TABLES_MD, out_dir / TABLES_CSV]


def write_paper_report(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                       paper_values: str | os.PathLike | None = PAPER_VALUES_FILE,
                       overwrite: bool = False) -> ReportFiles:
    """Read the runs and write the report into `out_dir`, with the paper's numbers from
    `paper_values` (None: without them); existing report files are replaced only with
    `overwrite` (`ReportError` otherwise)."""
    rows, notes = read_runs(run_dirs)
    paper = NO_PAPER_VALUES if paper_values is None else load_paper_values(paper_values)
    out_dir = Path(out_dir)
    tasks = list(dict.fromkeys(r.task for r in rows))
    existing = [p for p in planned_files(out_dir, tasks) if p.exists()]
    if existing and not overwrite:
        raise ReportError(f"{existing[0]} exists; choose another --out or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [draw_figure2(task, rows, paper, out_dir / figure_name(task)) for task in tasks]
    table = report_rows(rows, paper)
    (out_dir / TABLES_MD).write_text(to_markdown(table), encoding="utf-8")
    write_report_csv(out_dir / TABLES_CSV, table)
    return ReportFiles(figures, out_dir / TABLES_MD, out_dir / TABLES_CSV, notes)


__all__ = ["ReportFiles", "default_report_dir", "figure_name", "write_paper_report"]
