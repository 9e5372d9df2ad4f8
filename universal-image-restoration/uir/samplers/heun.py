"""`heun`: the reference's Heun (trapezoidal predictor-corrector) integrator of the reverse
IR-SDE or of its probability-flow ODE, on the grid linspace(T, 0, N + 1).

    f(x, t) = theta_t (mu - x) - c g_t^2 score(x, t),   c = 1 (SDE) or 1/2 (ODE)
    x_hat   = x_s - f(x_s, s) dt_s [+ g_s dw]                      (Euler predictor)
    x_t     = x_s - (f(x_s, s) + f(x_hat, t)) / 2 dt_s [+ (g_s + g_t) / 2 dw']

Two faithful oddities, each with a documented correction in `HeunOptions`:
- score = -eps_hat / g_t (the diffusion coefficient); `corrected_score` uses -eps_hat / sigma_bar_t.
- dt_s = (index difference) * dt, whatever the grid spacing T / N; `corrected_step_size` uses
  (t_s - t_t) * dt, the true time span.
Pairs of grid intervals make one 2nd-order step (2 evaluations); an odd N ends with one
Euler step. In the SDE variant every step draws fresh noise, the predictor's included.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from uir.common.checks import boolean, choice
from uir.common.declared import option
from uir.samplers.base import BaseSampler, ModelFn, Step
from uir.samplers.grids import heun_time_grid
from uir.samplers.noise import NoiseSource
from uir.samplers.options import SamplerOptions
from uir.samplers.registry import SAMPLERS


@dataclass(frozen=True)
class HeunOptions(SamplerOptions):
    solver_type: str = option("ode", check=choice(("ode", "sde")), help="ode (probability flow) or sde")
    # The reference turns the noise prediction into a score with the diffusion coefficient g_t
    # (score = -eps / g_t) and steps by (index difference) * dt whatever the NFE. Both are off
    # by default (faithful).
    corrected_score: bool = option(False, check=boolean, help="Heun: score from sigma_bar_t, not g_t")
    corrected_step_size: bool = option(False, check=boolean, help="Heun: step by the true time span")


@SAMPLERS.register("heun")
class HeunSampler(BaseSampler):
    Options = HeunOptions
    config: HeunOptions

    @property
    def stochastic(self) -> bool:
        return self.config.solver_type == "sde"

    @property
    def integer_steps(self) -> bool:
        return not self.config.corrected_step_size

    def settings(self) -> dict[str, Any]:
        return {"solver": self.config.solver_type, "order": 2, "parameterization": "noise",
                "fit_target": self.fit_target, "schedule": "uniform"}

    def timesteps(self) -> list[float]:
        return heun_time_grid(self.sde.T, self.config.num_sample_steps)

    def coefficients(self) -> tuple[list[float], list[float], list[float], list[float]]:
        """(t_i, theta(t_i), g(t_i), score denominator at t_i) on the grid, interpolated in
        float32 as the reference does."""
        sde = self.sde
        times = self.timesteps()
        theta, g, sigma_bar = (sde.at(array, times).tolist() for array in (sde.thetas, sde.sigmas, sde.sigma_bars))
        return times, theta, g, sigma_bar if self.config.corrected_score else g

    def finish(self, x: Tensor) -> Tensor:
        return x.clamp(0, 1)

    def steps(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None) -> Iterator[Step]:
        times, theta, g, denom = self.coefficients()
        c = 1.0 if self.stochastic else 0.5

        def drift(x: Tensor, i: int) -> Tensor:
            score = -model_fn(x, times[i]) / denom[i]
            return theta[i] * (mu - x) - c * g[i] ** 2 * score

        def span(s: int, t: int) -> float:
            return ((times[s] - times[t]) if self.config.corrected_step_size else (t - s)) * self.sde.dt

        def euler(x: Tensor, s: int, t: int) -> tuple[Tensor, Tensor]:
            f_s = drift(x, s)
            x_t = x - f_s * span(s, t)
            if noise is not None:
                x_t = x_t + g[s] * math.sqrt(span(s, t)) * noise(x)
            return x_t, f_s

        x = x_T
        M = len(times) - 1
        for k, i in enumerate(range(2, M + 1, 2), start=1):
            s = i - 2
            x_hat, f_s = euler(x, s, i)
            f_t = drift(x_hat, i)
            x_next = x - 0.5 * (f_s + f_t) * span(s, i)
            if noise is not None:
                x_next = x_next + 0.5 * (g[s] + g[i]) * math.sqrt(span(s, i)) * noise(x)
            x = x_next
            yield Step(k, times[i], x)
        if M % 2 == 1:
            x, _ = euler(x, M - 1, M)
            yield Step(M // 2 + 1, times[M], x)
