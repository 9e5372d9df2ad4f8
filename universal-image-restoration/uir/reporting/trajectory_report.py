"""`scripts/paper_trajectory.py RUN_DIR`: for each image whose trajectories a run kept, the
trajectory figure (`trajectory_figure`) and, where the network's outputs were kept, the
convergence-ratio figure (`convergence`), with a Markdown summary of both."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from uir.evaluation.tables import markdown_cell
from uir.reporting.convergence import draw_convergence
from uir.reporting.runs import ReportError
from uir.reporting.trajectories import read_trajectories
from uir.reporting.trajectory_figure import LEGEND_METRICS, draw_trajectory

FIGURES = ("trajectory", "convergence")
SUMMARY_MD = "trajectory_report.md"


def report_dir_name(run_dir: str | os.PathLike) -> str:
    """`<run name>_figures`: beside the run, and never a name test.py gives a run of the same options."""
    return f"{Path(run_dir).resolve().name}_figures"


@dataclass
class TrajectoryReport:
    figures: list[Path]
    markdown: Path
    notes: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[Path]:
        return [*self.figures, self.markdown]


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)


def _planned(out_dir: Path, groups, figures: Sequence[str]) -> list[Path]:
    return [out_dir / f"{kind}_{_safe(task)}_{_safe(image)}.png" for task, image in groups for kind in figures] + \
        [out_dir / SUMMARY_MD]


def write_trajectory_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                            figures: Sequence[str] = FIGURES, overwrite: bool = False) -> TrajectoryReport:
    """Write the figures of every kept image into `out_dir`; existing files only with `overwrite`."""
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        raise ReportError(f"--figures: {unknown[0]!r} is not one of {', '.join(FIGURES)}")
    groups = read_trajectories(run_dir)
    out_dir = Path(out_dir)
    existing = [p for p in _planned(out_dir, groups, figures) if p.exists()]
    if existing and not overwrite:
        raise ReportError(f"{existing[0]} exists; choose another --out or pass --overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, notes = [], []
    lines = ["# Sampling trajectories", "", f"Run: {Path(run_dir)}", ""]
    for (task, image), trajectories in groups.items():
        lines += [f"## {task} / {image}", ""]
        stem = f"{_safe(task)}_{_safe(image)}"
        if "trajectory" in figures:
            path, summary = draw_trajectory(trajectories, out_dir / f"trajectory_{stem}.png")
            written.append(path)
            share = ", ".join(f"{100 * e:.1f}%" for e in summary["explained"])
            lines += [f"Variance explained by PC1, PC2: {share}.", "",
                      "| point | states | " + " | ".join(m.upper() for m in LEGEND_METRICS) + " |",
                      "|---|---|" + "---|" * len(LEGEND_METRICS)]
            lines += [f"| {t.name} | {summary['states'][t.name]} | "
                      + " | ".join(markdown_cell(t.metrics.get(m), "{:.4f}") for m in LEGEND_METRICS) + " |"
                      for t in trajectories]
            lines.append("")
        with_predictions = [t for t in trajectories if "predictions" in t.load()]
        if "convergence" in figures and with_predictions:
            path, ratios = draw_convergence(with_predictions, out_dir / f"convergence_{stem}.png")
            written.append(path)
            lines += ["Ratio of convergence per step:", ""]
            lines += [f"- {name}: " + ", ".join(f"{step}: {r:.3f}" for step, r in values)
                      for name, values in ratios.items()]
            lines.append("")
        elif "convergence" in figures:
            notes.append(f"{task}/{image}: no trajectory kept the network's outputs (trajectory.predictions: "
                         f"false); no convergence figure")
    summary_path = out_dir / SUMMARY_MD
    summary_path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return TrajectoryReport(written, summary_path, notes)


__all__ = ["FIGURES", "report_dir_name", "TrajectoryReport", "write_trajectory_report"]
