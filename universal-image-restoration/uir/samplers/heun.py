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

import torch
from torch import Tensor

from uir.samplers.base import CountedModel, Denoiser, SampleResult, noise_prediction
from uir.samplers.config import SamplerConfig
from uir.samplers.grids import heun_time_grid, interp
from uir.samplers.noise import NoiseSource, as_noise_source
from uir.sde.irsde import IRSDE


@dataclass(frozen=True)
class HeunSampler:
    sde: IRSDE
    num_steps: int
    solver_type: str = "sde"
    corrected_score: bool = False
    corrected_step_size: bool = False
    fit_target: str = "noise"

    @classmethod
    def from_config(cls, sde: IRSDE, cfg: SamplerConfig) -> "HeunSampler":
        return cls(sde, cfg.num_sample_steps, cfg.solver_type, cfg.corrected_score, cfg.corrected_step_size,
                   cfg.target_for("heun"))

    @property
    def stochastic(self) -> bool:
        return self.solver_type == "sde"

    def coefficients(self) -> tuple[list[float], list[float], list[float], list[float]]:
        """(t_i, theta(t_i), g(t_i), score denominator at t_i) on the grid."""
        sde = self.sde
        times = heun_time_grid(sde.T, self.num_steps)
        t_grid = torch.tensor(times, dtype=torch.float64)
        t_array = torch.linspace(0, sde.T, sde.T + 1, dtype=torch.float32)
        theta = interp(t_grid, t_array, sde.thetas).tolist()
        g = interp(t_grid, t_array, sde.sigmas).tolist()
        denom = interp(t_grid, t_array, sde.sigma_bars).tolist() if self.corrected_score else g
        return times, theta, g, denom

    @torch.no_grad()
    def sample(self, model: Denoiser, x_T: Tensor, mu: Tensor, *, text_context=None, image_context=None,
               noise: NoiseSource | torch.Generator | None = None) -> SampleResult:
        noise = as_noise_source(noise, "heun") if self.stochastic else None
        net = CountedModel(model, mu, text_context, image_context)
        times, theta, g, denom = self.coefficients()
        c = 1.0 if self.stochastic else 0.5

        def drift(x: Tensor, i: int, output: Tensor) -> Tensor:
            score = -noise_prediction(output, self.fit_target, x, mu, times[i], self.sde) / denom[i]
            return theta[i] * (mu - x) - c * g[i] ** 2 * score

        def span(s: int, t: int) -> float:
            return ((times[s] - times[t]) if self.corrected_step_size else (t - s)) * self.sde.dt

        def euler(x: Tensor, s: int, t: int) -> tuple[Tensor, Tensor]:
            f_s = drift(x, s, net(x, times[s]))
            x_t = x - f_s * span(s, t)
            if noise is not None:
                x_t = x_t + g[s] * math.sqrt(span(s, t)) * noise(x)
            return x_t, f_s

        x = x_T
        M = len(times) - 1
        for i in range(2, M + 1, 2):
            s = i - 2
            x_hat, f_s = euler(x, s, i)
            f_t = drift(x_hat, i, net(x_hat, times[i]))
            x_next = x - 0.5 * (f_s + f_t) * span(s, i)
            if noise is not None:
                x_next = x_next + 0.5 * (g[s] + g[i]) * math.sqrt(span(s, i)) * noise(x)
            x = x_next
        if M % 2 == 1:
            x, _ = euler(x, M - 1, M)
        return SampleResult(x.clamp(0, 1), net.nfe, times)
