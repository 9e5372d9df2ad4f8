"""`posterior`: the reference's optimal-posterior sampling of IR-SDE.

    x0_hat  = (x_t - mu - sigma_bar_t eps_hat) / alpha_t + mu
    x_{t-1} = mu + w_xt (x_t - mu) + w_x0 (x0_hat - mu) + std_t z

(IR-SDE, Luo et al. 2023, Sec. 3.2), on the integer grid int(linspace(1, T, N)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from uir.samplers.base import CountedModel, Denoiser, SampleResult, noise_prediction
from uir.samplers.config import SamplerConfig
from uir.samplers.grids import euler_time_grid
from uir.samplers.noise import NoiseSource, as_noise_source
from uir.sde.irsde import IRSDE


@dataclass(frozen=True)
class PosteriorSampler:
    sde: IRSDE
    num_steps: int
    fit_target: str = "noise"
    stochastic = True

    @classmethod
    def from_config(cls, sde: IRSDE, cfg: SamplerConfig) -> "PosteriorSampler":
        return cls(sde, cfg.num_sample_steps, cfg.target_for("posterior"))

    @torch.no_grad()
    def sample(self, model: Denoiser, x_T: Tensor, mu: Tensor, *, text_context=None, image_context=None,
               noise: NoiseSource | torch.Generator | None = None) -> SampleResult:
        noise = as_noise_source(noise, "posterior")
        net = CountedModel(model, mu, text_context, image_context)
        grid = euler_time_grid(self.sde.T, self.num_steps)
        inv_alpha = torch.exp(self.sde.thetas_cumsum * self.sde.dt_tensor).tolist()
        sigma_bar = self.sde.sigma_bars.tolist()
        w_xt, w_x0 = (w.tolist() for w in self.sde.posterior_weights())
        std = self.sde.posterior_stds().tolist()
        x = x_T
        for t in grid:
            eps = noise_prediction(net(x, float(t)), self.fit_target, x, mu, t, self.sde)
            x0_hat = (x - mu - sigma_bar[t] * eps) * inv_alpha[t] + mu
            x = w_xt[t] * (x - mu) + w_x0[t] * (x0_hat - mu) + mu + std[t] * noise(x)
        return SampleResult(x, net.nfe, [float(t) for t in grid])
