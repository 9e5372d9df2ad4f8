"""`posterior`: the reference's optimal-posterior sampling of IR-SDE.

    x0_hat  = (x_t - mu - sigma_bar_t eps_hat) / alpha_t + mu
    x_{t-1} = mu + w_xt (x_t - mu) + w_x0 (x0_hat - mu) + std_t z

(IR-SDE, Luo et al. 2023, Sec. 3.2), on the integer grid int(linspace(1, T, N)).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from uir.samplers.base import IntegerGridSampler
from uir.samplers.noise import NoiseSource


@dataclass(frozen=True)
class PosteriorSampler(IntegerGridSampler):
    name = "posterior"

    def step(self, x: Tensor, eps: Tensor, mu: Tensor, t: int, noise: NoiseSource) -> Tensor:
        x0_hat = self.sde.x0_from_noise(x, eps, mu, t)
        return self.sde.posterior_mean(x, x0_hat, mu, t) + self.sde.posterior_std(t, x) * noise(x)
