"""The exact Gaussian oracle: a "network" that knows the true score of IR-SDE when every
pixel of the clean image is independent N(m, S^2).

    x_t = a x_0 + (1 - a) mu + s eps,   a = alpha_t, s = sigma_bar_t
    mean_t = a m + (1 - a) mu,          var_t = a^2 S^2 + s^2
    eps_hat = s (x - mean_t) / var_t,   x0_hat = m + a S^2 (x - mean_t) / var_t
    v_hat   = sigma_inf a eps_hat - (s / sigma_inf)(x0_hat - mu)

a(t) and s(t) are IR-SDE's arrays interpolated linearly in t (float64, held at the ends as
`numpy.interp` does, which the recorded goldens used). Because the oracle is
exact, the probability-flow ODE is solved in closed form: the map x_s -> x_t is affine,
x_t = mean_t + (std_t / std_s)(x_s - mean_s). Samplers are measured against it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from uir.sde.irsde import IRSDE, interp
from uir.sde.predictions import FIT_TARGETS, velocity_from


class ExactOracle:
    """A "network" that knows E[eps | x_t] and E[x_0 | x_t] exactly, called like the real one,
    `oracle(x, mu, t)`, and answering with its `fit_target`'s prediction (float64 inside).
    alpha(t) and sigma_bar(t) are the float64 arrays interpolated linearly in t, held at the
    ends: the continuous-time process every exact reference here is computed for."""

    def __init__(self, sde: IRSDE, fit_target: str = "noise"):
        if fit_target not in FIT_TARGETS:
            raise ValueError(f"fit_target: unknown target {fit_target!r}; valid: {', '.join(FIT_TARGETS)}")
        self.sde = sde
        self.fit_target = fit_target
        self._a = torch.exp(-sde.thetas_cumsum.double() * sde.dt_tensor.double())
        self._s = sde.sigma_bars.double()
        self._t = sde.timeline.double()

    def a_s(self, t: float) -> tuple[float, float]:
        t = torch.tensor(min(max(float(t), 0.0), float(self.sde.T)), dtype=torch.float64)
        return float(interp(t, self._t, self._a)), float(interp(t, self._t, self._s))

    def predictions(self, x: Tensor, mu: Tensor, a: float, s: float) -> tuple[Tensor, Tensor]:
        """(eps_hat, x0_hat) at the state x (float64) where alpha = a, sigma_bar = s."""
        raise NotImplementedError

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor:
        a, s = self.a_s(float(t))
        mud = mu.double()
        eps, x0 = self.predictions(x.double(), mud, a, s)
        out = {"noise": eps, "data": x0}.get(self.fit_target)
        if out is None:
            out = velocity_from(eps, x0, mud, a, s, self.sde.sigma_inf)
        return out.to(x.dtype)


class GaussianOracle(ExactOracle):
    def __init__(self, sde: IRSDE, m: Tensor, S: float, fit_target: str = "noise"):
        super().__init__(sde, fit_target)
        self.m = m.double()
        self.S = float(S)

    def with_target(self, fit_target: str) -> "GaussianOracle":
        return GaussianOracle(self.sde, self.m, self.S, fit_target)

    def mean_std(self, mu: Tensor, t: float) -> tuple[Tensor, float]:
        a, s = self.a_s(t)
        return a * self.m + (1 - a) * mu.double(), math.sqrt(a * a * self.S**2 + s * s)

    def predictions(self, x: Tensor, mu: Tensor, a: float, s: float) -> tuple[Tensor, Tensor]:
        m = self.m.to(x.device)
        mean = a * m + (1 - a) * mu
        var = a * a * self.S**2 + s * s
        return s * (x - mean) / var, m + a * self.S**2 * (x - mean) / var

    def ode_solution(self, x_s: Tensor, mu: Tensor, s: float, t: float) -> Tensor:
        """The exact probability-flow ODE map from time s to time t (float64)."""
        mean_s, std_s = self.mean_std(mu, s)
        mean_t, std_t = self.mean_std(mu, t)
        return mean_t + (std_t / std_s) * (x_s.double() - mean_s)
