"""Conversions between what a network predicts: noise, data (x_0) or velocity.

With x_t = alpha x_0 + (1 - alpha) mu + sigma eps and sigma_inf the stationary std,

    data      x_0 = (x_t - sigma eps) / alpha - (1 - alpha) / alpha * mu
    velocity  v   = sigma_inf alpha eps - (sigma / sigma_inf) (x_0 - mu)

The velocity inverts by the reference's formula when sigma^2 = sigma_inf^2 (1 - alpha^2), which
holds on IR-SDE's own time grid (MR Sampler, Li et al. 2025, Appendix on parameterizations), but
not between its integer times, where alpha and sigma are interpolated each on its own (by up to
2e-4 of alpha^2 + (sigma / sigma_inf)^2 - 1 on the cosine schedule). Samplers keep that formula
(it is the reference's); `exact_velocity=True` solves the two equations above instead, at any
alpha and sigma: the converged ODE that the step search aims at uses it.
`alpha` and `sigma` may be Python floats or tensors that broadcast against `x_t`.
These are the only place in the project where the three targets are related.
"""
from __future__ import annotations

from torch import Tensor

FIT_TARGETS = ("noise", "data", "velocity")


def data_from_noise(noise: Tensor, xt: Tensor, mu: Tensor, alpha, sigma) -> Tensor:
    out = (xt - sigma * noise) / alpha
    return out - (1 - alpha) / alpha * mu


def data_from_velocity(v: Tensor, xt: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float, *,
                       exact: bool = False) -> Tensor:
    """x_0 from v; `exact`: divided by alpha^2 + (sigma / sigma_inf)^2 (the reference takes it as 1)."""
    x0 = alpha * xt - sigma / sigma_inf * v + (1 - alpha) * mu
    if not exact:
        return x0
    return mu + (x0 - mu) / (alpha ** 2 + (sigma / sigma_inf) ** 2)


def noise_from_data(x0: Tensor, xt: Tensor, mu: Tensor, alpha, sigma) -> Tensor:
    return (xt - mu - (x0 - mu) * alpha) / sigma


def noise_from_velocity(v: Tensor, xt: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float) -> Tensor:
    return (v * alpha + (xt - mu) * sigma / sigma_inf) / sigma_inf


def velocity_from(noise: Tensor, x0: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float) -> Tensor:
    """The velocity target for training: v = sigma_inf alpha eps - (sigma / sigma_inf)(x_0 - mu)."""
    return sigma_inf * alpha * noise - (sigma / sigma_inf) * (x0 - mu)


def to_data(output: Tensor, fit_target: str, xt: Tensor, mu: Tensor, alpha, sigma, sigma_inf: float, *,
            exact_velocity: bool = False) -> Tensor:
    """A network output trained on `fit_target`, as a data (x_0) prediction (`exact_velocity`: see
    the module's docstring)."""
    if fit_target == "noise":
        return data_from_noise(output, xt, mu, alpha, sigma)
    if fit_target == "data":
        return output
    if fit_target == "velocity":
        return data_from_velocity(output, xt, mu, alpha, sigma, sigma_inf, exact=exact_velocity)
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
