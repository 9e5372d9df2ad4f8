"""Figure 2 of the paper: FID, LPIPS, PSNR and SSIM against NFE.

`draw_figure2` (the report's default): one strip per task, one panel per metric. `draw_figure2_paper`
(`paper_report.py --layout paper`): the published figure's layout, an FID and an LPIPS panel per
task in one figure, both axes logarithmic. One line per sampler label (ours solid with dots, the
paper's published curve of the same label dashed with crosses in the same colour), the LQ input as
a dotted horizontal line. Drawn with matplotlib's object API and the Agg canvas (no pyplot state,
no display needed).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from uir.reporting.paper import PaperValues
from uir.reporting.runs import ResultRow
from uir.metrics.registry import METRICS

FIGURE_METRICS = ("fid", "lpips", "psnr", "ssim")


def _panel(ax, metric: str, rows: Sequence[ResultRow], paper: PaperValues, task: str) -> None:
    labels = list(dict.fromkeys(r.label for r in rows if not r.is_input))
    drawn = False
    nfes: set[int] = set()
    for i, label in enumerate(labels):
        colour = f"C{i % 10}"
        ours = sorted((r.nfe, r.metrics[metric]) for r in rows
                      if r.label == label and r.nfe is not None and r.metrics[metric] is not None)
        if ours:
            ax.plot(*zip(*ours), marker="o", color=colour, label=label)
            nfes.update(n for n, _ in ours)
            drawn = True
        published = paper.series(task, label, metric)
        if published:
            ax.plot(*zip(*published), linestyle="--", marker="x", color=colour, alpha=0.7,
                    label=f"{paper.paper_label(label)} (paper)")
            nfes.update(n for n, _ in published)
    for row in rows:
        if row.is_input and row.metrics[metric] is not None:
            ax.axhline(row.metrics[metric], color="0.4", linestyle=":", label="input (LQ)")
            drawn = True
    arrow = "higher is better" if METRICS[metric].higher_is_better else "lower is better"
    ax.set_title(f"{METRICS[metric].title} ({arrow})")
    ax.set_xlabel("NFE")
    if not drawn:
        ax.text(0.5, 0.5, f"no {METRICS[metric].title} values in these runs", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    if nfes:
        ax.set_xscale("log")
        ax.set_xticks(sorted(nfes))
        ax.set_xticklabels([str(n) for n in sorted(nfes)])
        ax.minorticks_off()
    ax.grid(True, alpha=0.3)


def _legend(figure: Figure, axes, rows: Sequence[ResultRow], paper: PaperValues) -> None:
    """One legend below the panels: each label, its paper curve, the input."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    labels = dict.fromkeys(r.label for r in rows if not r.is_input)
    order = [name for label in labels for name in (label, f"{paper.paper_label(label)} (paper)")] + ["input (LQ)"]
    names = [name for name in order if name in handles]
    if names:
        figure.legend([handles[n] for n in names], names, loc="outside lower center", ncols=min(len(names), 6))


def draw_figure2(task: str, rows: Sequence[ResultRow], paper: PaperValues, path: str | os.PathLike) -> Path:
    """Write the task's four-panel PNG to `path` (rows of other tasks are ignored)."""
    rows = [r for r in rows if r.task == task]
    figure = Figure(figsize=(17, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(FIGURE_METRICS))
    for ax, metric in zip(axes, FIGURE_METRICS):
        _panel(ax, metric, rows, paper, task)
    _legend(figure, axes, rows, paper)
    figure.suptitle(f"{task}: metrics against NFE")
    path = Path(path)
    figure.savefig(path)
    return path


PAPER_LAYOUT_METRICS = ("fid", "lpips")


def draw_figure2_paper(tasks: Sequence[str], rows: Sequence[ResultRow], paper: PaperValues,
                       path: str | os.PathLike) -> Path:
    """The published layout: FID and LPIPS against NFE for every task side by side (four panels a
    row), log-log axes."""
    panels = [(task, metric) for task in tasks for metric in PAPER_LAYOUT_METRICS]
    columns = min(len(panels), 4)
    lines = -(-len(panels) // columns)
    figure = Figure(figsize=(4.4 * columns, 3.9 * lines + 0.8), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    for ax, (task, metric) in zip(axes, panels):
        _panel(ax, metric, [r for r in rows if r.task == task], paper, task)
        ax.set_title(f"{task}: {METRICS[metric].title}")
        if any(line.get_ydata().size for line in ax.get_lines()):
            ax.set_yscale("log")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    _legend(figure, axes[:len(panels)], rows, paper)
    path = Path(path)
    figure.savefig(path)
    return path


__all__ = ["FIGURE_METRICS", "PAPER_LAYOUT_METRICS", "draw_figure2", "draw_figure2_paper"]
