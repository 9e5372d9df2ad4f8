"""The mean-reverting SDE of IR-SDE (Luo et al., 2023).

    dx = theta_t (mu - x) dt + g_t dw,        g_t^2 = 2 sigma_inf^2 theta_t

on the integer grid t = 0..T. Its marginal given x_0 is Gaussian,

    x_t = alpha_t x_0 + (1 - alpha_t) mu + sigma_bar_t eps,
    alpha_t = exp(-thetas_cumsum_t dt),   sigma_bar_t^2 = sigma_inf^2 (1 - alpha_t^2).

All arrays are float32 CPU tensors of length T + 1, computed once, in the same order of
operations as the reference so that they agree to the last bit that matters; training and
every sampler read them here (`IRSDE.at` between integer times, `IRSDE.coefficient` on them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from uir.sde.settings import SCHEDULES, IRSDESettings


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear f(x) through the knots (xp, fp), xp increasing; beyond either end the
    outermost segment is extended (DPM-Solver's `interpolate_fn`). Between knots it computes
    f0 + (x - x0)(f1 - f0) / (x1 - x0) in the promoted dtype of its inputs, the order the
    reference's float32 grids need; at a knot it returns that knot's value exactly (as
    `numpy.interp` does). The one interpolation of the project."""
    x = x.reshape(-1)
    xp = xp.reshape(-1).to(x.device)
    fp = fp.reshape(-1).to(x.device)
    dtype = torch.promote_types(torch.promote_types(x.dtype, xp.dtype), fp.dtype)
    x, xp, fp = x.to(dtype), xp.to(dtype), fp.to(dtype)
    j = (torch.searchsorted(xp, x, right=True) - 1).clamp(0, xp.numel() - 2)
    x0, x1, f0, f1 = xp[j], xp[j + 1], fp[j], fp[j + 1]
    return torch.where(x == x1, f1, f0 + (x - x0) * (f1 - f0) / (x1 - x0))


def theta_schedule(name: str, T: int) -> Tensor:
    """theta_t for t = 0..T (float32, length T + 1)."""
    if name == "constant":
        return torch.ones(T + 1, dtype=torch.float32)
    if name == "linear":
        n = T + 1
        scale = 1000 / n
        return torch.linspace(scale * 0.0001, scale * 0.02, n, dtype=torch.float32)
    if name == "cosine":
        # The improved-DDPM cosine betas on T + 2 steps, with the first and last dropped.
        n = T + 2
        s = 0.008
        x = torch.linspace(0, n, n + 1, dtype=torch.float32)
        abar = torch.cos(((x / n) + s) / (1 + s) * math.pi * 0.5) ** 2
        abar = abar / abar[0]
        return 1 - abar[1:-1]
    raise ValueError(f"sde.schedule: unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")


def _to_index(t) -> Tensor | int:
    """An integer time index as int, or as a flat [B] long tensor (one time per sample)."""
    if isinstance(t, Tensor) and t.dim() > 0:
        return t.reshape(-1).long().cpu()
    return int(t)


@dataclass(frozen=True, eq=False)
class IRSDE:
    """IR-SDE coefficients on t = 0..T. Build it with `IRSDE.create`."""

    T: int
    sigma_inf: float
    schedule: str
    eps: float
    thetas: Tensor
    sigmas: Tensor  # the diffusion coefficient g_t
    thetas_cumsum: Tensor
    sigma_bars: Tensor  # the marginal std sigma_bar_t
    dt_tensor: Tensor  # 0-d float32, as the reference keeps it

    @classmethod
    def create(cls, max_sigma: float, T: int = 100, schedule: str = "cosine", eps: float = 0.01) -> "IRSDE":
        """`max_sigma >= 1` is on the 8-bit scale and is divided by 255, as in the reference."""
        return cls.from_settings(IRSDESettings.from_dict(dict(max_sigma=max_sigma, T=T, schedule=schedule, eps=eps)))

    @classmethod
    def from_settings(cls, settings: IRSDESettings) -> "IRSDE":
        max_sigma, T, schedule, eps = settings.max_sigma, settings.T, settings.schedule, settings.eps
        sigma_inf = max_sigma / 255 if max_sigma >= 1 else max_sigma
        thetas = theta_schedule(schedule, T)
        sigmas = torch.sqrt(sigma_inf**2 * 2 * thetas)
        thetas_cumsum = torch.cumsum(thetas, dim=0)
        # dt is chosen so that alpha_T = exp(-thetas_cumsum_T dt) = eps.
        dt = -1 / thetas_cumsum[-1] * math.log(eps)
        sigma_bars = torch.sqrt(sigma_inf**2 * (1 - torch.exp(-2 * thetas_cumsum * dt)))
        return cls(T, float(sigma_inf), schedule, float(eps), thetas, sigmas, thetas_cumsum, sigma_bars, dt)

    # ---- per-index arrays on t = 0..T (float32), computed once --------------------------
    @property
    def dt(self) -> float:
        return float(self.dt_tensor)

    @cached_property
    def timeline(self) -> Tensor:
        """t = 0..T as float32: the knots every off-grid time is interpolated between."""
        return torch.linspace(0, self.T, self.T + 1, dtype=torch.float32)

    @cached_property
    def alphas(self) -> Tensor:
        """alpha_t = exp(-thetas_cumsum_t dt): the mean's decay towards mu."""
        return torch.exp(-self.thetas_cumsum * self.dt_tensor)

    @cached_property
    def inv_alphas(self) -> Tensor:
        """1 / alpha_t, as exp(thetas_cumsum_t dt) (the posterior sampler's order of operations)."""
        return torch.exp(self.thetas_cumsum * self.dt_tensor)

    @cached_property
    def lambdas(self) -> Tensor:
        """lambda_t = log(alpha_t / sigma_bar_t), half the log-SNR: MR Sampler's time variable."""
        return torch.log(self.alphas) - torch.log(self.sigma_bars)

    @cached_property
    def euler_noise_stds(self) -> Tensor:
        """g_t sqrt(dt), the std of one Euler-Maruyama step's noise (product in float64, as the
        reference's Python scalars)."""
        return (self.sigmas.double() * math.sqrt(self.dt)).float()

    def _decays(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """(exp(-k theta_t dt), exp(-k thetas_cumsum_t dt), exp(-k thetas_cumsum_{t-1} dt))."""
        a = torch.exp(-k * self.thetas * self.dt_tensor)
        b = torch.exp(-k * self.thetas_cumsum * self.dt_tensor)
        c = torch.roll(b, 1)  # at t = 0 this reads index -1, as the reference's thetas_cumsum[t - 1] does
        return a, b, c

    @cached_property
    def posterior_weights(self) -> tuple[Tensor, Tensor]:
        """(w_xt, w_x0) with E[x_{t-1} | x_t, x_0] - mu = w_xt (x_t - mu) + w_x0 (x_0 - mu)."""
        a, b, c = self._decays(1)
        return a * (1 - c**2) / (1 - b**2), c * (1 - a**2) / (1 - b**2)

    @cached_property
    def posterior_stds(self) -> Tensor:
        """Std of x_{t-1} | x_t, x_0; the variance is clamped below at 1e-20 dt, as in the reference."""
        a, b, c = self._decays(2)
        var = (1 - a) * (1 - c) / (1 - b)
        return (0.5 * torch.log(torch.clamp(var, min=1e-20 * self.dt_tensor))).exp() * self.sigma_inf

    # ---- reading the arrays ---------------------------------------------------------------
    def at(self, array: Tensor, t) -> Tensor:
        """`array` (one of the above) at possibly fractional times t (a float or a tensor),
        interpolated linearly in float32 between the integer knots; exact on them."""
        t = torch.as_tensor(t, dtype=torch.float32)
        return interp(t, self.timeline, array).reshape(t.shape)

    def marginals(self, t) -> tuple[Tensor, Tensor]:
        """(alpha_t, sigma_bar_t) at possibly fractional t: what converts one prediction target
        into another (`uir.sde.predictions`)."""
        return self.at(self.alphas, t), self.at(self.sigma_bars, t)

    def coefficient(self, array: Tensor, t, like: Tensor) -> Tensor:
        """array[t] for an integer t (a 0-d tensor) or a [B] tensor of them (shaped [B, 1, ...]
        to broadcast against `like`), on `like`'s device."""
        idx = _to_index(t)
        if isinstance(idx, int):
            return array[idx].to(like.device)
        return array[idx].to(like.device).view(-1, *([1] * (like.dim() - 1)))

    # ---- forward process ----------------------------------------------------------------
    def marginal_mean(self, x0: Tensor, mu: Tensor, t) -> Tensor:
        """E[x_t | x_0] = mu + (x_0 - mu) alpha_t."""
        return mu + (x0 - mu) * self.coefficient(self.alphas, t, x0)

    def marginal_std(self, t, like: Tensor) -> Tensor:
        return self.coefficient(self.sigma_bars, t, like)

    def noise_state(self, x0: Tensor, mu: Tensor, t, noise: Tensor) -> Tensor:
        """x_t = E[x_t | x_0] + sigma_bar_t noise: noising x0 towards mu."""
        return self.marginal_mean(x0, mu, t) + self.marginal_std(t, x0) * noise

    def prior_sample(self, mu: Tensor, noise: Tensor) -> Tensor:
        """x_T ~ N(mu, sigma_inf^2): the reference's starting state."""
        return mu + noise * self.sigma_inf

    # ---- reverse process (integer t) ----------------------------------------------------
    def x0_from_noise(self, xt: Tensor, noise: Tensor, mu: Tensor, t) -> Tensor:
        """x_0 = (x_t - mu - sigma_bar_t eps) / alpha_t + mu, in the posterior sampler's order of
        operations (MR Sampler's differs: `uir.sde.predictions.data_from_noise`)."""
        return (xt - mu - self.marginal_std(t, xt) * noise) * self.coefficient(self.inv_alphas, t, xt) + mu

    def posterior_mean(self, xt: Tensor, x0: Tensor, mu: Tensor, t) -> Tensor:
        """E[x_{t-1} | x_t, x_0], the optimal reverse step of IR-SDE."""
        w_xt, w_x0 = self.posterior_weights
        return self.coefficient(w_xt, t, xt) * (xt - mu) + self.coefficient(w_x0, t, xt) * (x0 - mu) + mu

    def posterior_std(self, t, like: Tensor) -> Tensor:
        return self.coefficient(self.posterior_stds, t, like)

    def reverse_sde_drift(self, xt: Tensor, score: Tensor, mu: Tensor, t) -> Tensor:
        """(theta_t (mu - x) - g_t^2 score) dt, so that x_{t-1} = x_t - drift (+ noise)."""
        theta = self.coefficient(self.thetas, t, xt)
        g = self.coefficient(self.sigmas, t, xt)
        return (theta * (mu - xt) - g**2 * score) * self.dt

    def score_from_noise(self, noise: Tensor, t) -> Tensor:
        """score = -eps / sigma_bar_t."""
        return -noise / self.marginal_std(t, noise)
