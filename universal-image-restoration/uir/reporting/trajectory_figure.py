"""The README's "Sampling trajectory" figure (the reference's scripts/trajectory.py) for one image:

(a) the LQ image, its GT and each sweep point's result, side by side;
(b) every point's trajectory, all from the same x_T, projected on the first two principal
    components of (GT + every state of every point), an arrow per step, the GT as a star, the
    final PSNR / SSIM / LPIPS of each point in the legend.

One colour per trajectory (label and NFE). Drawn with matplotlib's object API on the Agg canvas.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from uir.data.paired import read_image_uint8
from uir.metrics import quantize_to_uint8
from uir.metrics.registry import METRICS
from uir.reporting.trajectories import Trajectory, pca_2d, read_gt

LEGEND_METRICS = ("psnr", "ssim", "lpips")


def _metric_text(trajectory: Trajectory) -> str:
    cells = []
    for name in LEGEND_METRICS:
        value = trajectory.metrics.get(name)
        digits = METRICS[name].digits if name in METRICS else 4
        cells.append(f"{METRICS[name].title if name in METRICS else name} "
                     + ("n/a" if value is None else f"{value:.{digits}f}"))
    return ", ".join(cells)


def _image(ax, img: np.ndarray | None, title: str) -> None:
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    if img is not None:
        ax.imshow(img, interpolation="nearest")


def _arrows(ax, points: np.ndarray, colour: str) -> None:
    for start, end in zip(points[:-1], points[1:]):
        ax.annotate("", xy=tuple(end), xytext=tuple(start),
                    arrowprops=dict(arrowstyle="->", color=colour, linewidth=1.6, mutation_scale=16))


def draw_trajectory(trajectories: Sequence[Trajectory], path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """The two-part figure of one image's trajectories; returns the PNG and a summary (the
    variance the two components explain, each trajectory's number of states)."""
    records = [t.load() for t in trajectories]
    first = records[0]
    gt = read_gt(first)
    lq = read_image_uint8(first["lq_path"]) if Path(first["lq_path"]).is_file() else None
    arrays = ([gt[None]] if gt is not None else []) + [r["states"] for r in records]
    coords, explained = pca_2d(arrays)
    gt_point = coords.pop(0)[0] if gt is not None else None

    panels = 2 + len(records)
    figure = Figure(figsize=(max(12.0, 2.0 * panels), 12.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, panels, height_ratios=[1, 3.2])
    _image(figure.add_subplot(grid[0, 0]), lq, "LQ" if lq is not None else f"LQ (not found: {first['lq_path']})")
    gt_img = quantize_to_uint8(gt).permute(1, 2, 0).numpy() if gt is not None else None
    _image(figure.add_subplot(grid[0, 1]), gt_img, "GT" if gt is not None else "GT (none)")
    for k, (trajectory, record) in enumerate(zip(trajectories, records)):
        result = quantize_to_uint8(record["states"][-1]).permute(1, 2, 0).numpy()
        _image(figure.add_subplot(grid[0, 2 + k]), result, trajectory.name)

    ax = figure.add_subplot(grid[1, :])
    if gt_point is not None:
        ax.scatter(*gt_point, marker="*", s=700, color="#d62728", edgecolor="k", zorder=5, label="GT")
    for k, (trajectory, points) in enumerate(zip(trajectories, coords)):
        colour = f"C{k % 10}" if f"C{k % 10}" != "C3" else "C9"  # C3 is the GT's red
        ax.plot(points[:, 0], points[:, 1], color=colour, alpha=0.25, linewidth=1)
        _arrows(ax, points, colour)
        ax.scatter(*points[-1], color=colour, s=90, zorder=4,
                   label=f"{trajectory.name}, {len(points) - 1} steps: {_metric_text(trajectory)}")
    ax.scatter(*coords[0][0], facecolor="none", edgecolor="k", s=160, zorder=4, label="x_T (shared)")
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of the variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    figure.suptitle(f"Sampling trajectories, {first['task']}/{first['image']}: (a) results, "
                    f"(b) states on the first two principal components of GT + every state")
    path = Path(path)
    figure.savefig(path)
    summary = {"explained": [float(e) for e in explained],
               "states": {t.name: int(r["states"].shape[0]) for t, r in zip(trajectories, records)}}
    return path, summary


__all__ = ["draw_trajectory"]
