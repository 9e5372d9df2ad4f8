"""The whole report of finished runs: a Figure 2 PNG per task, Markdown and CSV tables, and
each run's status (a run still running, interrupted or failed is said to be one)."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uir.evaluation.run_folder import STATUS_FILE
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


def figure_names(tasks: Sequence[str]) -> dict[str, str]:
    """Each task's figure file, each file once: ``figure2_<task>.png``, the task's characters
    outside [\\w.-] as ``_``; a task whose file name an earlier task has (``sp ace`` then ``sp_ace``,
    or names that differ only in case: one file on a case-insensitive disk) gets ``_2``, ``_3``, ..."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for task in dict.fromkeys(tasks):
        stem, n = "figure2_" + re.sub(r"[^\w.-]+", "_", task), 1
        while (name := f"{stem}{'' if n == 1 else f'_{n}'}.png").casefold() in taken:
            n += 1
        taken.add(name.casefold())
        names[task] = name
    return names


def run_status(run_dir: str | os.PathLike) -> str | None:
    """The status a run folder's run.json records (finished, running, interrupted, failed), or
    None without one (results.json alone)."""
    try:
        status = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return str(status) if status else None


def status_lines(run_dirs: Sequence[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """The report's "Runs" section (every run and its status), and a note for each run that has
    not finished: its tables are the last it wrote, and may lack images and points."""
    section, notes = ["## Runs", ""], []
    for run in run_dirs:
        status = run_status(run)
        section.append(f"- {run}: {status or f'status unknown (no {STATUS_FILE})'}")
        if status not in (None, "finished"):
            notes.append(f"run {run} is {status}, not finished: the report shows the tables it wrote last, which "
                         f"may lack images and sweep points")
    return section, notes


def default_report_dir(run_dirs: Sequence[str | os.PathLike]) -> Path:
    """``paper_report`` beside the first run folder, or ``paper_report_2``, ... when that one is taken."""
    parent = Path(run_dirs[0]).resolve().parent
    n, folder = 1, parent / REPORT_DIR_NAME
    while folder.exists() and any(folder.iterdir()):
        n += 1
        folder = parent / f"{REPORT_DIR_NAME}_{n}"
    return folder


def planned_files(out_dir: Path, tasks: Sequence[str]) -> list[Path]:
    """Every file the report writes, each once (`ReportError` if two would be one)."""
    files = [*(out_dir / name for name in figure_names(tasks).values()), out_dir / TABLES_MD, out_dir / TABLES_CSV]
    if len({f.name.casefold() for f in files}) != len(files):
        raise ReportError(f"two report files would have one name in {out_dir}: {', '.join(f.name for f in files)}")
    return files


def write_paper_report(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                       paper_values: str | os.PathLike | None = PAPER_VALUES_FILE,
                       overwrite: bool = False) -> ReportFiles:
    """Read the runs and write the report into `out_dir`, with the paper's numbers from
    `paper_values` (None: without them); existing report files are replaced only with
    `overwrite` (`ReportError` otherwise)."""
    rows, notes = read_runs(run_dirs)
    runs_section, unfinished = status_lines(run_dirs)
    notes = unfinished + notes
    paper = NO_PAPER_VALUES if paper_values is None else load_paper_values(paper_values)
    out_dir = Path(out_dir)
    tasks = list(dict.fromkeys(r.task for r in rows))
    existing = [p for p in planned_files(out_dir, tasks) if p.exists()]
    if existing and not overwrite:
        raise ReportError(f"{existing[0]} exists; choose another --out or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = figure_names(tasks)
    figures = [draw_figure2(task, rows, paper, out_dir / names[task]) for task in tasks]
    table = report_rows(rows, paper)
    markdown = "\n".join([to_markdown(table).rstrip("\n"), "", *runs_section, *(f"- note: {n}" for n in unfinished)])
    (out_dir / TABLES_MD).write_text(markdown + "\n", encoding="utf-8")
    write_report_csv(out_dir / TABLES_CSV, table)
    return ReportFiles(figures, out_dir / TABLES_MD, out_dir / TABLES_CSV, notes)


__all__ = ["ReportFiles", "default_report_dir", "figure_names", "run_status", "write_paper_report"]
