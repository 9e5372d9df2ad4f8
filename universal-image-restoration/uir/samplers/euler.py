"""`sde`: the reference's Euler-Maruyama discretisation of the reverse IR-SDE.

    x_{t-1} = x_t - (theta_t (mu - x_t) - g_t^2 score) dt - g_t sqrt(dt) z,
    score = -eps_hat / sigma_bar_t,

on the integer grid int(linspace(1, T, N)). Every step uses IR-SDE's single-step dt,
so with N < T the chain does not reach t = 0: that is the reference's behaviour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from uir.samplers.base import CountedModel, Denoiser, SampleResult, noise_prediction
from uir.samplers.config import SamplerConfig
from uir.samplers.grids import euler_time_grid
from uir.samplers.noise import NoiseSource, as_noise_source
from uir.sde.irsde import IRSDE


@dataclass(frozen=True)
class EulerSampler:
    sde: IRSDE
    num_steps: int
    fit_target: str = "noise"
    stochastic = True

    @classmethod
    def from_config(cls, sde: IRSDE, cfg: SamplerConfig) -> "EulerSampler":
        return cls(sde, cfg.num_sample_steps, cfg.target_for("sde"))

    @torch.no_grad()
    def sample(self, model: Denoiser, x_T: Tensor, mu: Tensor, *, text_context=None, image_context=None,
               noise: NoiseSource | torch.Generator | None = None) -> SampleResult:
        noise = as_noise_source(noise, "sde")
        net = CountedModel(model, mu, text_context, image_context)
        sde, dt = self.sde, self.sde.dt
        grid = euler_time_grid(sde.T, self.num_steps)
        theta, g, sigma_bar = sde.thetas.tolist(), sde.sigmas.tolist(), sde.sigma_bars.tolist()
        x = x_T
        for t in grid:
            eps = noise_prediction(net(x, float(t)), self.fit_target, x, mu, t, sde)
            score = -eps / sigma_bar[t]
            x = x - (theta[t] * (mu - x) - g[t] ** 2 * score) * dt - g[t] * math.sqrt(dt) * noise(x)
        return SampleResult(x, net.nfe, [float(t) for t in grid])
