"""Conversions between what a network predicts: noise, data (x_0) or velocity.

With x_t = alpha x_0 + (1 - alpha) mu + sigma eps and sigma_inf the stationary std,

    data      x_0 = (x_t - sigma eps) / alpha - (1 - alpha) / alpha * mu
    velocity  v   = sigma_inf alpha eps - (sigma / sigma_inf) (x_0 - mu)

The velocity inverts exactly when sigma^2 = sigma_inf^2 (1 - alpha^2), which holds on
IR-SDE's own time grid (MR Sampler, Li et al. 2025, Appendix on parameterizations).
`alpha` and `sigma` may be Python floats or tensors that broadcast against `x_t`.
These are the only place in the project where the three targets are related.
"""
from __future__ import annotations

from torch import Tensor

FIT_TARGETS = ("noise", "data", "velocity")


def data_from_noise(noise: Tensor, xt: Tensor, mu: Tensor, alpha, sigma) -> Tensor:
    out = (xt - sigma * noise) / alpha
    return out - (1 - alpha) / alpha * mu


def data_from_velocity(v: Tensor, xt: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float) -> Tensor:
    return alpha * xt - sigma / sigma_inf * v + (1 - alpha) * mu


def noise_from_data(x0: Tensor, xt: Tensor, mu: Tensor, alpha, sigma) -> Tensor:
    return (xt - mu - (x0 - mu) * alpha) / sigma


def noise_from_velocity(v: Tensor, xt: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float) -> Tensor:
    return (v * alpha + (xt - mu) * sigma / sigma_inf) / sigma_inf


def velocity_from(noise: Tensor, x0: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float) -> Tensor:
    """The velocity target for training: v = sigma_inf alpha eps - (sigma / sigma_inf)(x_0 - mu)."""
    return sigma_inf * alpha * noise - (sigma / sigma_inf) * (x0 - mu)


def to_data(output: Tensor, fit_target: str, xt: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float) -> Tensor:
    """A network output trained on `fit_target`, as a data (x_0) prediction."""
    if fit_target == "noise":
        return data_from_noise(output, xt, mu, alpha, sigma)
    if fit_target == "data":
        return output
    if fit_target == "velocity":
        return data_from_velocity(output, xt, mu, alpha, sigma, sigma_inf)
    raise ValueError(f"fit_target: unknown target {fit_target!r}; valid: {', '.join(FIT_TARGETS)}")


def to_noise(output: Tensor, fit_target: str, xt: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float) -> Tensor:
    """A network output trained on `fit_target`, as a noise (eps) prediction."""
    if fit_target == "noise":
        return output
    if fit_target == "data":
        return noise_from_data(output, xt, mu, alpha, sigma)
    if fit_target == "velocity":
        return noise_from_velocity(output, xt, mu, alpha, sigma, sigma_inf)
    raise ValueError(f"fit_target: unknown target {fit_target!r}; valid: {', '.join(FIT_TARGETS)}")
