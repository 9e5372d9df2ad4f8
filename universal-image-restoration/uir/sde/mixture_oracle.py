"""A non-Gaussian exact oracle: clean images from a mixture of narrow Gaussians around K
template images, x_0 ~ (1/K) sum_k N(c_k, s^2 I). Sharp and multimodal near t = 0, like real
data, it guards the samplers' study against tuning to the Gaussian oracle.

With x_t = a x_0 + (1 - a) mu + sigma eps (a = alpha_t, sigma = sigma_bar_t), each component
gives x_t ~ N(m_k, v I), m_k = a c_k + (1 - a) mu, v = a^2 s^2 + sigma^2, so the exact denoiser
is the softmax-weighted posterior mean

    pi_k   = softmax_k(-|x_t - m_k|^2 / (2 v))            (over each image's pixels)
    x0_hat = sum_k pi_k (c_k + (a s^2 / v)(x_t - m_k))
    eps_hat = (x_t - a x0_hat - (1 - a) mu) / sigma.

Its probability-flow ODE has no closed form; `uir.samplers.reference` solves it to convergence.
"""
from __future__ import annotations

import torch
from torch import Tensor

from uir.sde.irsde import IRSDE
from uir.sde.oracle import ExactOracle


class MixtureOracle(ExactOracle):
    def __init__(self, sde: IRSDE, templates: Tensor, s: float, fit_target: str = "noise"):
        """templates: [K, C, H, W], the component means c_k; s: their common std (pixels)."""
        super().__init__(sde, fit_target)
        if templates.dim() != 4 or templates.shape[0] < 1:
            raise ValueError(f"MixtureOracle: templates must be [K, C, H, W] with K >= 1, got {tuple(templates.shape)}")
        if s <= 0:
            raise ValueError(f"MixtureOracle: the component std s must be positive, got {s}")
        self.templates = templates.double()
        self.s = float(s)

    def with_target(self, fit_target: str) -> "MixtureOracle":
        return MixtureOracle(self.sde, self.templates, self.s, fit_target)

    def weights(self, x: Tensor, mu: Tensor, a: float, s: float) -> Tensor:
        """pi [B, K]: the posterior probability of each template given x_t."""
        v = a * a * self.s**2 + s * s
        means = a * self.templates.to(x.device).unsqueeze(0) + (1 - a) * mu.unsqueeze(1)  # [B, K, C, H, W]
        dist2 = (x.unsqueeze(1) - means).pow(2).flatten(2).sum(-1)
        return torch.softmax(-dist2 / (2 * v), dim=1)

    def predictions(self, x: Tensor, mu: Tensor, a: float, s: float) -> tuple[Tensor, Tensor]:
        v = a * a * self.s**2 + s * s
        c = self.templates.to(x.device).unsqueeze(0)
        means = a * c + (1 - a) * mu.unsqueeze(1)
        pi = self.weights(x, mu, a, s).view(*x.shape[:1], -1, 1, 1, 1)
        x0 = (pi * (c + (a * self.s**2 / v) * (x.unsqueeze(1) - means))).sum(1)
        return (x - a * x0 - (1 - a) * mu) / s, x0
