"""The probability-flow ODE solved to convergence: the exact answer that fast samplers are
measured against when there is no closed form (the mixture oracle, a trained network).

It is the ODE of the continuous-time process of `uir.sde.oracle.ExactOracle`: alpha(t) and
sigma_bar(t) interpolated linearly in t (float64) between IR-SDE's integer times, and
lambda = log(alpha / sigma_bar) computed from them (MR Sampler's grids interpolate lambda on its
own). It runs from t = T to t = 0, without `lambda_min` clipping, in float64, on a grid that
holds every integer time (where the interpolated coefficients have kinks) with each unit
interval cut into `substeps` equal pieces, by MR Sampler's own third-order data-prediction
multistep formulas (`ode_step`). Convergence is checked by halving the steps: the study
reports the change.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from uir.samplers.mr_steps import ode_step, step_coefficients
from uir.sde.irsde import IRSDE, interp

# x0_fn(x, t, alpha, sigma) -> E[x_0 | x_t = x] in float64
DataPrediction = Callable[[Tensor, float, float, float], Tensor]
# at_integer_times(t, x_t, x0_hat) -> None
IntegerTimeHook = Callable[[int, Tensor, "Tensor | None"], None]


def reference_grid(sde: IRSDE, substeps: int) -> tuple[list[float], Tensor, Tensor, Tensor]:
    """(t_i, alpha_i, sigma_i, lambda_i), float64, from t = T down to 0, `substeps` points per unit."""
    times = torch.linspace(float(sde.T), 0.0, sde.T * substeps + 1, dtype=torch.float64)
    knots = sde.timeline.double()
    alphas = interp(times, knots, torch.exp(-sde.thetas_cumsum.double() * sde.dt_tensor.double()))
    sigmas = interp(times, knots, sde.sigma_bars.double())
    return times.tolist(), alphas, sigmas, torch.log(alphas) - torch.log(sigmas)


@torch.no_grad()
def solve_probability_flow(x0_fn: DataPrediction, x_T: Tensor, mu: Tensor, sde: IRSDE, *, substeps: int = 4,
                           order: int = 3, at_integer_times: IntegerTimeHook | None = None) -> Tensor:
    """x at t = 0 from x_T at t = T (float64). `at_integer_times(t, x, x0)` sees the state and its
    data prediction at every integer time, from T down (at t = 0, x0 is None): the teacher
    trajectory of a step search, at no extra cost."""
    times, alphas, sigmas, lambdas = reference_grid(sde, substeps)
    x, mu = x_T.double(), mu.double()
    q: list[Tensor] = []
    for i in range(1, len(times)):
        k = min(order, i)
        q = [x0_fn(x, times[i - 1], float(alphas[i - 1]), float(sigmas[i - 1]))] + q[:order - 1]
        if at_integer_times is not None and (i - 1) % substeps == 0:
            at_integer_times(sde.T - (i - 1) // substeps, x, q[0])
        c = step_coefficients(alphas, sigmas, lambdas, i, k, "ode", "data")
        x = ode_step(x, mu, q, c, k, "data")
    if at_integer_times is not None:
        at_integer_times(0, x, None)
    return x
