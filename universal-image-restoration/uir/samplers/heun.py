"""`heun`: the reference's Heun (trapezoidal predictor-corrector) integrator of the reverse
IR-SDE or of its probability-flow ODE, on the grid linspace(T, 0, N + 1).

    f(x, t) = theta_t (mu - x) - c g_t^2 score(x, t),   c = 1 (SDE) or 1/2 (ODE)
    x_hat   = x_s - f(x_s, s) dt_s [+ g_s dw]                      (Euler predictor)
    x_t     = x_s - (f(x_s, s) + f(x_hat, t)) / 2 dt_s [+ (g_s + g_t) / 2 dw']

Two faithful oddities, each with a documented correction in `SamplerConfig`:
- score = -eps_hat / g_t (the diffusion coefficient); `corrected_score` uses -eps_hat / sigma_bar_t.
- dt_s = (index difference) * dt, whatever the grid spacing T / N; `corrected_step_size` uses
  (t_s - t_t) * dt, the true time span.
Pairs of grid intervals make one 2nd-order step (2 evaluations); an odd N ends with one
Euler step. In the SDE variant every step draws fresh noise, the predictor's included.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from uir.samplers.base import BaseSampler, ModelFn
from uir.samplers.config import SamplerConfig
from uir.samplers.grids import heun_time_grid
from uir.samplers.noise import NoiseSource
from uir.sde.irsde import IRSDE


@dataclass(frozen=True)
class HeunSampler(BaseSampler):
    sde: IRSDE
    num_steps: int
    solver_type: str = "ode"
    corrected_score: bool = False
    corrected_step_size: bool = False
    fit_target: str = "noise"
    name = "heun"

    @classmethod
    def from_config(cls, sde: IRSDE, cfg: SamplerConfig) -> "HeunSampler":
        return cls(sde, cfg.num_sample_steps, cfg.solver_type, cfg.corrected_score, cfg.corrected_step_size,
                   cfg.target_for("heun"))

    @property
    def stochastic(self) -> bool:
        return self.solver_type == "sde"

    def coefficients(self) -> tuple[list[float], list[float], list[float], list[float]]:
        """(t_i, theta(t_i), g(t_i), score denominator at t_i) on the grid, interpolated in
        float32 as the reference does."""
        sde = self.sde
        times = heun_time_grid(sde.T, self.num_steps)
        theta, g, sigma_bar = (sde.at(array, times).tolist() for array in (sde.thetas, sde.sigmas, sde.sigma_bars))
        return times, theta, g, sigma_bar if self.corrected_score else g

    def solve(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None
              ) -> tuple[Tensor, list[float]]:
        times, theta, g, denom = self.coefficients()
        c = 1.0 if self.stochastic else 0.5

        def drift(x: Tensor, i: int) -> Tensor:
            score = -model_fn(x, times[i]) / denom[i]
            return theta[i] * (mu - x) - c * g[i] ** 2 * score

        def span(s: int, t: int) -> float:
            return ((times[s] - times[t]) if self.corrected_step_size else (t - s)) * self.sde.dt

        def euler(x: Tensor, s: int, t: int) -> tuple[Tensor, Tensor]:
            f_s = drift(x, s)
            x_t = x - f_s * span(s, t)
            if noise is not None:
                x_t = x_t + g[s] * math.sqrt(span(s, t)) * noise(x)
            return x_t, f_s

        x = x_T
        M = len(times) - 1
        for i in range(2, M + 1, 2):
            s = i - 2
            x_hat, f_s = euler(x, s, i)
            f_t = drift(x_hat, i)
            x_next = x - 0.5 * (f_s + f_t) * span(s, i)
            if noise is not None:
                x_next = x_next + 0.5 * (g[s] + g[i]) * math.sqrt(span(s, i)) * noise(x)
            x = x_next
        if M % 2 == 1:
            x, _ = euler(x, M - 1, M)
        return x.clamp(0, 1), times
