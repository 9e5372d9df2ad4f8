"""Time grids of every sampler.

All grids run from large t (noisy) to small t. They are built with the same torch
float32 operations as the reference, since a grid point's rounding decides its
coefficients.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from uir.sde.irsde import IRSDE, interp


def mr_time_grid(
    sde: IRSDE,
    schedule: str,
    n_steps: int,
    *,
    lambda_min: float = float("-inf"),
    timestep_offset: int = 0,
    rho: float = 7.0,
) -> Tensor:
    """MR Sampler's time points t_0 > t_1 > ... (float32), after Table 2 of Lin et al. 2024
    ("Common diffusion noise schedules and sample steps are flawed") plus Karras and
    linear-in-lambda grids. Normally n_steps + 1 points; `trailing` can give a different count,
    as in the reference."""
    t_array, alpha, sigma, lam = sde.timeline, sde.alphas, sde.sigma_bars, sde.lambdas
    T = sde.T
    n = n_steps + 1
    # The largest t whose lambda_t is still >= lambda_min.
    clipped = int(torch.searchsorted(torch.flip(lam, [0]), torch.tensor(lambda_min, dtype=lam.dtype)))
    t_max = T - clipped
    if schedule == "linspace":
        return torch.linspace(0, t_max, n, dtype=torch.float32).flip(0)
    if schedule == "leading":
        interval = t_max // n
        return (torch.arange(0, n, dtype=torch.float32) * interval).flip(0) + timestep_offset
    if schedule == "trailing":
        interval = T / n
        return torch.arange(t_max, 0, -interval, dtype=torch.float32)
    if schedule == "karras-n":
        # Karras et al. 2022, eq. (5), on sigma_bar / alpha, mapped back to t.
        k_sigma = sigma / alpha
        s_min, s_max = k_sigma.min().item(), k_sigma.max().item()
        i = torch.linspace(0, 1, n, dtype=torch.float32)
        karras = (s_max ** (1 / rho) + i * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        return interp(karras, k_sigma, t_array)
    if schedule == "karras-t":
        i = torch.linspace(0, 1, n, dtype=torch.float32)
        t_min = 1.0
        return (T ** (1 / rho) + i * (t_min ** (1 / rho) - T ** (1 / rho))) ** rho
    if schedule == "linear-lambda":
        lam_lo = max(lam.min().item(), lambda_min)
        lam_hi = lam.max().item()
        grid = torch.linspace(lam_lo, lam_hi, n, dtype=torch.float32)
        return interp(grid, lam.flip(0), t_array.flip(0))
    if schedule == "integer-lambda":
        return distinct_integers(mr_time_grid(sde, "linear-lambda", n_steps, lambda_min=lambda_min))
    raise ValueError(f"time_schedule: unknown schedule {schedule!r}")


def distinct_integers(times: Tensor) -> Tensor:
    """`times` (decreasing) rounded to integers and moved apart where rounding merges them, keeping
    both ends: IR-SDE's own time points, where its coefficients need no interpolation and where
    the network was trained."""
    t = [int(v) for v in times.round().tolist()]
    if len(t) - 1 > t[0] - t[-1]:
        raise ValueError(f"sampler.time_schedule 'integer-lambda': {len(t) - 1} steps do not fit between the integer "
                         f"times {t[0]} and {t[-1]}; use fewer num_sample_steps or another time_schedule")
    start = t[0]
    for i in range(len(t) - 2, -1, -1):  # from the end: at least one apart
        t[i] = max(t[i], t[i + 1] + 1)
    t[0] = start
    for i in range(1, len(t)):  # from the start: back under the first point
        t[i] = min(t[i], t[i - 1] - 1)
    return torch.tensor(t, dtype=torch.float32)


def custom_timesteps(key: str, value: Any) -> tuple[float, ...] | dict[int, tuple[float, ...]]:
    """The check of `sampler.timesteps`: a list of time points, strictly decreasing and >= 0, or a
    map from the number of steps (NFE) to such a list of NFE + 1 points."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{key}: the map is empty; give a list of time points, or a map from NFE to a list")
        table: dict[int, tuple[float, ...]] = {}
        for nfe, points in value.items():
            if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
                raise ValueError(f"{key}: the map's keys are numbers of steps (NFE, integers >= 1), got {nfe!r}")
            grid = _decreasing(f"{key}[{nfe}]", points)
            if len(grid) != nfe + 1:
                raise ValueError(f"{key}[{nfe}]: NFE {nfe} needs {nfe + 1} time points (from T down to the end), "
                                 f"got {len(grid)}")
            table[nfe] = grid
        return dict(sorted(table.items()))
    return _decreasing(key, value)


def _decreasing(key: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise ValueError(f"{key}: expected a list of at least two time points from T down to the end "
                         f"(e.g. [100, 60, 25, 8, 2, 0]), got {value!r}")
    points = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{key}: point {i} is not a finite number: {v!r}")
        points.append(float(v))
    for i, (a, b) in enumerate(zip(points, points[1:])):
        if not b < a:
            raise ValueError(f"{key}: the time points must decrease strictly; point {i + 1} ({b:g}) is not below "
                             f"point {i} ({a:g})")
    if points[-1] < 0:
        raise ValueError(f"{key}: the time points must lie in [0, T]; the last is {points[-1]:g}")
    return tuple(points)


def pick_custom_grid(timesteps: tuple[float, ...] | dict[int, tuple[float, ...]], n_steps: int, T: int,
                     key: str = "sampler.timesteps") -> Tensor:
    """The custom grid for `n_steps` steps (float32, as every grid), checked against the SDE's T."""
    if isinstance(timesteps, dict):
        if n_steps not in timesteps:
            raise ValueError(f"{key}: no grid for num_sample_steps={n_steps} (NFE {n_steps}); the map has grids for "
                             f"NFE {', '.join(map(str, timesteps))}: add one, or sample with one of those")
        grid = timesteps[n_steps]
    else:
        grid = timesteps
        if len(grid) != n_steps + 1:
            raise ValueError(f"{key}: {len(grid)} time points give {len(grid) - 1} steps, but num_sample_steps is "
                             f"{n_steps}; give {n_steps + 1} points, or a map from NFE to a list (for a sweep)")
    if grid[0] > T:
        raise ValueError(f"{key}: the time points must lie in [0, T = {T}]; the first is {grid[0]:g}")
    return torch.tensor(grid, dtype=torch.float32)


def euler_time_grid(T: int, n_steps: int) -> list[int]:
    """The reference Euler-Maruyama / posterior grid: int(linspace(1, T, N)), from T down."""
    return [int(t) for t in reversed(np.linspace(1, T, n_steps, dtype=float).tolist())]


def heun_time_grid(T: int, n_steps: int) -> list[float]:
    """Heun's grid: linspace(T, 0, N + 1)."""
    return np.linspace(T, 0, n_steps + 1, dtype=float).tolist()
