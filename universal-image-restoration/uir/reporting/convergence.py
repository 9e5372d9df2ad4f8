"""The paper's ratio of convergence (the reference's scripts/numerical_stablility.py), from the
network outputs a trajectory kept (`trajectory: {predictions: true}`).

MR Sampler expands the network's output q in lambda = log(alpha / sigma_bar): the step from
t_i uses q_i and its derivative d1_i ~ (q_i - q_{i-1}) / (lambda_i - lambda_{i-1}). The expansion
converges where the first-order term is smaller than the zeroth, |q_i / d1_i| > h_i, with h_i
the step in lambda from t_i. For each step after the first, the ratio is the fraction of pixels
where it holds (0/0 counts as not, x/0 as holding: the reference's nan_to_num). The paper's
evidence: with data prediction the ratio stays near 1, with noise prediction it falls.

Where the reference divides by lambda_{i+1} - lambda_i (the next step) we divide the difference
by its own spacing; on the uniform-in-lambda grid of its figure (linear-lambda) the two agree.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from uir.reporting.runs import ReportError
from uir.reporting.trajectories import Trajectory


def convergence_ratio(record: Mapping[str, Any]) -> tuple[list[int], list[float]]:
    """(step numbers, ratio) of one trajectory record: the steps from the second on that evaluated the network."""
    if "predictions" not in record:
        raise ReportError(f"the trajectory of {record['task']}/{record['image']} ({record['label']}) kept no "
                          f"predictions; run with trajectory: {{predictions: true}}")
    q, steps = record["predictions"], record["prediction_steps"]
    lam, lam_states = record["prediction_lambdas"], record["lambdas"]
    out_steps, ratios = [], []
    for j in range(1, len(steps)):
        d0 = q[j].double()
        d1 = (d0 - q[j - 1].double()) / (lam[j] - lam[j - 1])
        h = lam_states[steps[j]] - lam[j]  # from the evaluation's time to where the step lands
        r = torch.nan_to_num((d0 / d1).abs())
        ratios.append(float((r > h).double().mean()))
        out_steps.append(int(steps[j]))
    return out_steps, ratios


def draw_convergence(trajectories: Sequence[Trajectory], path: str | os.PathLike) -> tuple[Path, dict[str, list]]:
    """One line per trajectory (ratio against the step index); returns the PNG and {name: ratios}."""
    figure = Figure(figsize=(8, 5.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    values: dict[str, list] = {}
    markers = "xo^sdv<>"
    for k, trajectory in enumerate(trajectories):
        record = trajectory.load()
        steps, ratios = convergence_ratio(record)
        values[trajectory.name] = list(zip(steps, ratios))
        parameterization = record.get("parameterization") or "?"
        ax.plot(steps, ratios, marker=markers[k % len(markers)], linewidth=2, markersize=8, color=f"C{k % 10}",
                label=f"{trajectory.name}: {parameterization} prediction")
    first = trajectories[0]
    ax.set_title(f"Ratio of convergence, {first.task}/{first.image}")
    ax.set_xlabel("index of timestep (step)")
    ax.set_ylabel("fraction of pixels with |d0 / d1| > h")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(True, linestyle="--", linewidth=0.5)
    ax.legend(loc="lower left")
    path = Path(path)
    figure.savefig(path)
    return path, values


__all__ = ["convergence_ratio", "draw_convergence"]
