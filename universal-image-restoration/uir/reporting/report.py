"""The whole report of finished runs: Figure 2 (a PNG per task, or the paper's layout), Markdown
and CSV tables, the ten-task table where the runs hold posterior-100 and MR Sampler-2, and each
run's status (a run still running, interrupted or failed is said to be one)."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uir.evaluation.run_folder import STATUS_FILE
from uir.reporting.figures import draw_figure2, draw_figure2_paper
from uir.reporting.paper import NO_PAPER_VALUES, PAPER_VALUES_FILE, load_paper_values
from uir.reporting.runs import ReportError, read_runs
from uir.reporting.tables import report_rows, to_markdown, write_report_csv
from uir.reporting.ten_tasks import TEN_TASKS_CSV, TEN_TASKS_MD, ten_task_rows, write_ten_task_table

REPORT_DIR_NAME = "paper_report"
TABLES_MD = "paper_tables.md"
TABLES_CSV = "paper_tables.csv"
PAPER_LAYOUT_FIGURE = "figure2_paper.png"
LAYOUTS = ("strip", "paper")


@dataclass
class ReportFiles:
    figures: list[Path]
    markdown: Path
    csv: Path
    notes: list[str] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)  # further tables (the ten-task claim)

    @property
    def all(self) -> list[Path]:
        return [*self.figures, self.markdown, self.csv, *self.tables]


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


def default_report_dir(run_dirs: Sequence[str | os.PathLike], name: str = REPORT_DIR_NAME) -> Path:
    """``<name>`` (paper_report) beside the first run folder, or ``<name>_2``, ... when that one is taken."""
    parent = Path(run_dirs[0]).resolve().parent
    n, folder = 1, parent / name
    while folder.exists() and any(folder.iterdir()):
        n += 1
        folder = parent / f"{name}_{n}"
    return folder


def planned_files(out_dir: Path, tasks: Sequence[str], layout: str = "strip", ten_tasks: bool = False) -> list[Path]:
    """Every file the report writes, each once (`ReportError` if two would be one)."""
    names = figure_names(tasks)
    figures = [out_dir / PAPER_LAYOUT_FIGURE] if layout == "paper" else [out_dir / names[t] for t in tasks]
    extra = [out_dir / TEN_TASKS_MD, out_dir / TEN_TASKS_CSV] if ten_tasks else []
    files = [*figures, out_dir / TABLES_MD, out_dir / TABLES_CSV, *extra]
    if len({f.name.casefold() for f in files}) != len(files):
        raise ReportError(f"two report files would have one name in {out_dir}: {', '.join(f.name for f in files)}")
    return files


def write_paper_report(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                       paper_values: str | os.PathLike | None = PAPER_VALUES_FILE,
                       overwrite: bool = False, layout: str = "strip") -> ReportFiles:
    """Read the runs and write the report into `out_dir`, with the paper's numbers from
    `paper_values` (None: without them); `layout` "strip" (a Figure 2 PNG per task) or "paper"
    (the published layout, one PNG); existing report files are replaced only with `overwrite`
    (`ReportError` otherwise)."""
    if layout not in LAYOUTS:
        raise ReportError(f"--layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    rows, notes = read_runs(run_dirs)
    runs_section, unfinished = status_lines(run_dirs)
    notes = unfinished + notes
    paper = NO_PAPER_VALUES if paper_values is None else load_paper_values(paper_values)
    out_dir = Path(out_dir)
    tasks = list(dict.fromkeys(r.task for r in rows))
    spread = paper if paper_values is not None else load_paper_values()  # the ten-task table's tolerance
    ten_tasks = ten_task_rows(rows, spread)
    existing = [p for p in planned_files(out_dir, tasks, layout, bool(ten_tasks)) if p.exists()]
    if existing and not overwrite:
        raise ReportError(f"{existing[0]} exists; choose another --out or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    if layout == "paper":
        figures = [draw_figure2_paper(tasks, rows, paper, out_dir / PAPER_LAYOUT_FIGURE)]
    else:
        names = figure_names(tasks)
        figures = [draw_figure2(task, rows, paper, out_dir / names[task]) for task in tasks]
    table = report_rows(rows, paper)
    markdown = "\n".join([to_markdown(table).rstrip("\n"), "", *runs_section, *(f"- note: {n}" for n in unfinished)])
    (out_dir / TABLES_MD).write_text(markdown + "\n", encoding="utf-8")
    write_report_csv(out_dir / TABLES_CSV, table)
    files = ReportFiles(figures, out_dir / TABLES_MD, out_dir / TABLES_CSV, notes)
    if ten_tasks:  # the tolerance is the paper's own spread, also when its curves are left out of the figures
        files.tables = write_ten_task_table(out_dir, ten_tasks, spread)
    return files


__all__ = ["ReportFiles", "default_report_dir", "figure_names", "run_status", "write_paper_report"]
