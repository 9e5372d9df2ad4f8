"""UniC, the corrector of UniPC (Zhao et al., "UniPC: A Unified Predictor-Corrector Framework
for Fast Sampling of Diffusion Models", NeurIPS 2023), derived for MR Sampler's ODE steps.

MR Sampler is DPM-Solver(++) applied to y = x - mu: IR-SDE's marginal is y_t = alpha_t y_0 +
sigma_t eps (sigma_t = sigma_bar_t), so with lambda = log(alpha / sigma), h = lambda_i - lambda_{i-1}
and d(lambda) = x0_hat - mu (data) or eps_hat (noise) along the solution, the probability-flow
ODE is solved exactly by the variation-of-constants formulas

    data:   y_i = (sigma_i / sigma_{i-1}) y_{i-1} + alpha_i sum_{k>=0} h^{k+1} phi_{k+1}(-h) d^(k)
    noise:  y_i = (alpha_i / alpha_{i-1}) y_{i-1} - sigma_i sum_{k>=0} h^{k+1} phi_{k+1}(h)  d^(k)

(d^(k): k-th derivative in lambda at lambda_{i-1}; phi_1(z) = (e^z - 1) / z,
phi_{k+1}(z) = (phi_k(z) - 1/k!) / z). The k = 0 term is MR Sampler's first-order step. UniC
replaces the rest by B(h) sum_m a_m D_m, with D_m = (d_m - d_0) / r_m the differences to p
points: the p - 1 points the predictor used (r_m = (lambda_{i-1-m} - lambda_{i-1}) / h < 0) and
the new point t_i (r_p = 1), whose model output is evaluated at the predicted x_i. Since
D_m = sum_{k>=1} r_m^{k-1} h^k d^(k) / k!, matching the terms k = 1..p gives the p x p system

    sum_m a_m r_m^{k-1} = k! h phi_{k+1}(z) / B(h),   k = 1..p,   z = -h (data) or h (noise),

so the corrected step's local error is O(h^{p+2}): a predictor of order p becomes order p + 1.
Solved exactly ("unic"), B(h) cancels out of B(h) a_m. UniPC's variants B(h) = h ("unic-bh1")
and B(h) = h phi_1(z) ("unic-bh2": 1 - e^{-h} for data, e^h - 1 for noise), both O(h) as the
order condition needs, differ from it where UniPC does not solve: its one-point corrector
(p = 1) takes a_1 = 1/2, the leading term of h phi_2(z) / B(h). The corrected state is

    x_i^c = x_i^(1) + w B(h) sum_m a_m D_m,   w = alpha_i (data) or -sigma_i (noise),

x_i^(1) the first-order step from x_{i-1}. The new output is kept for the next step as it is
(evaluated at the predicted x_i, not re-evaluated at x_i^c), so the corrector costs no
network evaluation; the last step, whose output nothing needs, stays uncorrected.

Measured on the Gaussian oracle (tests/test_sampler_options.py, T = 1000, NFE 100 -> 200): p = 1
and 2 show orders 1.96 / 2.90 (data) and 2.00 / 2.75 (noise), against 0.99 / 2.29 and 0.99 / 1.93
without. Only the ODE: in an SDE step the fresh noise makes the model outputs along the path
rough in lambda, so their differences do not estimate the derivatives this expansion matches.
"""
from __future__ import annotations

import math

import numpy as np


def phi(k: int, z: float) -> float:
    """phi_k(z) = sum_{j>=0} z^j / (j + k)!, k >= 1 (the series where cancellation would hurt)."""
    if abs(z) < 1.0:
        return sum(z**j / math.factorial(j + k) for j in range(25))
    return (math.exp(z) - sum(z**j / math.factorial(j) for j in range(k))) / z**k


def unic_coefficients(lambdas: list[float], parameterization: str, variant: str) -> list[float]:
    """c_m = B(h) a_m / r_m, so that the correction is w sum_m c_m (q_m - q_0).

    `lambdas` = [lambda_i, lambda_{i-1}, ..., lambda_{i-p}]: the new point, then the p points
    the predictor read, newest first (q_0 at lambda_{i-1}). The result lists the p - 1 older
    points (q_1 .. q_{p-1}) first and the new point last. Computed in float64."""
    lam_new, lam0, *older = (float(v) for v in lambdas)
    h = lam_new - lam0
    z = -h if parameterization == "data" else h
    B = h if variant == "unic-bh1" else h * phi(1, z)
    r = np.array([(lam - lam0) / h for lam in older] + [1.0])
    p = len(r)
    if p == 1 and variant != "unic":
        return [B / 2]  # UniPC's one-point corrector: a_1 = 1/2, the leading term of h phi_2(z) / B
    V = np.vander(r, p, increasing=True).T  # V[k - 1, m] = r_m^(k - 1)
    b = np.array([math.factorial(k) * h * phi(k + 1, z) / B for k in range(1, p + 1)])
    a = np.linalg.solve(V, b)
    return (B * a / r).tolist()
