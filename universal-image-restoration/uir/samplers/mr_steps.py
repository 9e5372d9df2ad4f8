"""MR Sampler's step formulas: exponential-integrator steps of IR-SDE's probability-flow ODE and
reverse SDE in lambda = log(alpha / sigma_bar), written DPM-Solver(++)-style (Li et al., ICLR 2025).

With h_i = lambda_i - lambda_{i-1} and q the converted network outputs at earlier points,

ODE, data prediction (eq. 16 and its multistep variants):
    x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i D
          + mu (1 - sigma_i / sigma_{i-1} + (sigma_i / sigma_{i-1}) alpha_{i-1} - alpha_i)
    D = phi1 q0 - phi2 D1 + phi3 D2,  phi1 = e^{-h} - 1, phi2 = phi1 / h + 1, phi3 = phi2 / h - 1/2
ODE, noise prediction:
    x_i = (alpha_i / alpha_{i-1}) x_{i-1} - sigma_i D + mu (1 - alpha_i / alpha_{i-1})
    D = phi1 q0 + phi2 D1 + phi3 D2,  phi1 = e^{h} - 1, phi2 = phi1 / h - 1, phi3 = phi2 / h - 1/2
SDE, data prediction (phi1 = 1 - e^{-2h}, phi2 = 1 - phi1 / (2h)):
    x_i = (sigma_i / sigma_{i-1}) e^{-h} x_{i-1} + alpha_i (phi1 q0 + phi2 D1) + sigma_i sqrt(phi1) z
          + mu (1 - (alpha_i / alpha_{i-1}) e^{-2h} - alpha_i phi1)
SDE, noise prediction (phi1 = e^{h} - 1, phi2 = phi1 / h - 1):
    x_i = (alpha_i / alpha_{i-1}) x_{i-1} - 2 sigma_i (phi1 q0 + phi2 D1) + sigma_i sqrt(e^{2h} - 1) z
          + mu (1 - alpha_i / alpha_{i-1})
D1, D2 are the divided differences of q, with the ratios r0 = h_{i-1} / h_i, r1 = h_{i-2} / h_i.

Every scalar is computed from the float32 grid arrays in float32, in the reference's order of
operations: a step of noise prediction late in the chain divides by a small sigma, so the last
bits of these scalars show in the output.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Ratios:
    """r0 = h_{i-1} / h_i (order >= 2), r1 = h_{i-2} / h_i and r0 + r1 (order 3)."""

    r0: float = 0.0
    r1: float = 0.0
    r0_plus_r1: float = 0.0


@dataclass(frozen=True)
class OdeCoefficients:
    """x_i = x * x_{i-1} - d * (phi1 q0 -+ phi2 D1 + phi3 D2) + mu * mu."""

    x: float
    d: float
    mu: float
    phi1: float
    phi2: float
    phi3: float
    ratios: Ratios


@dataclass(frozen=True)
class SdeCoefficients:
    """x_i = x * x_{i-1} +- (q0 * q0 + d1 * D1) + z * z + mu * mu, z standard normal."""

    x: float
    q0: float
    d1: float
    z: float
    mu: float
    ratios: Ratios


def dynamic_threshold(x0: Tensor, ratio: float, max_value: float) -> Tensor:
    """Imagen's dynamic thresholding (Saharia et al. 2022): per sample, s = clamp(quantile(|x0|,
    ratio), 1, max_value); clip x0 to [-s, s] and divide by s."""
    dtype = x0.dtype
    flat = x0.float().reshape(x0.shape[0], -1)
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(flat, -s, s) / s).reshape(x0.shape).to(dtype)


def step_ratios(lambdas: Tensor, i: int, order: int, h: Tensor) -> Ratios:
    if order < 2:
        return Ratios()
    r0 = (lambdas[i - 1] - lambdas[i - 2]) / h
    if order < 3:
        return Ratios(float(r0))
    r1 = (lambdas[i - 2] - lambdas[i - 3]) / h
    return Ratios(float(r0), float(r1), float(r0 + r1))


def step_coefficients(alphas: Tensor, sigmas: Tensor, lambdas: Tensor, i: int, order: int,
                      solver_type: str, parameterization: str) -> OdeCoefficients | SdeCoefficients:
    """The scalars of one step to grid point i, as Python floats."""
    a, a_prev, s, s_prev = alphas[i], alphas[i - 1], sigmas[i], sigmas[i - 1]
    h = lambdas[i] - lambdas[i - 1]
    ratios = step_ratios(lambdas, i, order, h)
    if solver_type == "ode" and parameterization == "data":
        phi1 = torch.exp(-h) - 1
        phi2 = phi1 / h + 1
        return OdeCoefficients(x=float(s / s_prev), d=float(a), mu=float(1 - s / s_prev + s / s_prev * a_prev - a),
                               phi1=float(phi1), phi2=float(phi2), phi3=float(phi2 / h - 0.5), ratios=ratios)
    if solver_type == "ode":
        phi1 = torch.exp(h) - 1
        phi2 = phi1 / h - 1
        return OdeCoefficients(x=float(a / a_prev), d=float(s), mu=float(1 - a / a_prev),
                               phi1=float(phi1), phi2=float(phi2), phi3=float(phi2 / h - 0.5), ratios=ratios)
    if parameterization == "data":
        phi1 = 1 - torch.exp(-2 * h)
        return SdeCoefficients(x=float(s / s_prev * torch.exp(-h)), q0=float(a * phi1), d1=float(a * (1 - phi1 / 2 / h)),
                               z=float(s * torch.sqrt(phi1)), mu=float(1 - a / a_prev * torch.exp(-2 * h) - a * phi1),
                               ratios=ratios)
    phi1 = torch.exp(h) - 1
    return SdeCoefficients(x=float(a / a_prev), q0=float(2 * s * phi1), d1=float(2 * s * (phi1 / h - 1)),
                           z=float(s * torch.sqrt(torch.exp(2 * h) - 1)), mu=float(1 - a / a_prev), ratios=ratios)


def divided_differences(q: list[Tensor], r: Ratios, order: int) -> tuple[Tensor | None, Tensor | None]:
    """(D1, D2): first and second divided differences of the buffered outputs, scaled by h."""
    if order == 1:
        return None, None
    d1_0 = (q[0] - q[1]) / r.r0
    if order == 2:
        return d1_0, None
    d1_1 = (q[1] - q[2]) / r.r1
    return d1_0 + (d1_0 - d1_1) * r.r0 / r.r0_plus_r1, (d1_0 - d1_1) / r.r0_plus_r1


def ode_step(x: Tensor, mu: Tensor, q: list[Tensor], c: OdeCoefficients, order: int, parameterization: str) -> Tensor:
    """One ODE step of the given order from x, with the buffered outputs q (newest first)."""
    d1, d2 = divided_differences(q, c.ratios, order)
    sign = -1.0 if parameterization == "data" else 1.0
    D = c.phi1 * q[0]
    if order >= 2:
        D = D + sign * (c.phi2 * d1)
    if order >= 3:
        D = D + c.phi3 * d2
    return c.x * x - c.d * D + mu * c.mu


def sde_step(x: Tensor, mu: Tensor, q: list[Tensor], c: SdeCoefficients, order: int, parameterization: str,
             z: Tensor) -> Tensor:
    """One SDE step of the given order from x, with the standard-normal draw z."""
    d1, _ = divided_differences(q, c.ratios, order)
    sign = 1.0 if parameterization == "data" else -1.0
    x_next = c.x * x + sign * (c.q0 * q[0])
    if order >= 2:
        x_next = x_next + sign * (c.d1 * d1)
    return x_next + c.z * z + mu * c.mu
