"""`sde`: the reference's Euler-Maruyama discretisation of the reverse IR-SDE.

    x_{t-1} = x_t - (theta_t (mu - x_t) - g_t^2 score) dt - g_t sqrt(dt) z,
    score = -eps_hat / sigma_bar_t,

on the integer grid int(linspace(1, T, N)). Every step uses IR-SDE's single-step dt,
so with N < T the chain does not reach t = 0: that is the reference's behaviour.
"""
from __future__ import annotations

from torch import Tensor

from uir.samplers.integer_grid import IntegerGridSampler
from uir.samplers.noise import NoiseSource
from uir.samplers.registry import SAMPLERS


@SAMPLERS.register("sde")
class EulerSampler(IntegerGridSampler):
    def step(self, x: Tensor, eps: Tensor, mu: Tensor, t: int, noise: NoiseSource) -> Tensor:
        sde = self.sde
        score = sde.score_from_noise(eps, t)
        return x - sde.reverse_sde_drift(x, score, mu, t) - sde.coefficient(sde.euler_noise_stds, t, x) * noise(x)
