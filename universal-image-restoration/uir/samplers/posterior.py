"""`posterior`: the reference's optimal-posterior sampling of IR-SDE.

    x0_hat  = (x_t - mu - sigma_bar_t eps_hat) / alpha_t + mu
    x_{t-1} = mu + w_xt (x_t - mu) + w_x0 (x0_hat - mu) + std_t z

(IR-SDE, Luo et al. 2023, Sec. 3.2), on the integer grid int(linspace(1, T, N)).
"""
from __future__ import annotations

from torch import Tensor

from uir.samplers.integer_grid import IntegerGridSampler
from uir.samplers.noise import NoiseSource
from uir.samplers.registry import SAMPLERS


@SAMPLERS.register("posterior")
class PosteriorSampler(IntegerGridSampler):
    def step(self, x: Tensor, eps: Tensor, mu: Tensor, t: int, noise: NoiseSource) -> Tensor:
        x0_hat = self.sde.x0_from_noise(x, eps, mu, t)
        return self.sde.posterior_mean(x, x0_hat, mu, t) + self.sde.posterior_std(t, x) * noise(x)
