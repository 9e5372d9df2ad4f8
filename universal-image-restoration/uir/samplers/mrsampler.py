"""MR Sampler (Li et al., "MRS: A Fast Sampler for Mean Reverting Diffusion based on ODE and
SDE Solvers", ICLR 2025): exponential-integrator solvers of IR-SDE's probability-flow ODE and
reverse SDE in lambda = log(alpha / sigma_bar), written DPM-Solver(++)-style.

With h_i = lambda_i - lambda_{i-1} and q the converted network output at earlier points,

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
D1, D2 are the divided differences of q; the first steps use lower orders (warm-up), and
with fewer than 10 steps the order drops near the end, as in the reference.

Beyond the reference (all off by default): `lower_order_final` caps each step's order by the
steps left, as DPM-Solver++ does (the last step at order 1), `final_order` sets the last step's
order, and `corrector` adds UniPC's UniC corrector to the ODE steps (`uir.samplers.unic`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from uir.samplers.base import BaseSampler, ModelFn
from uir.samplers.config import SamplerConfig
from uir.samplers.grids import mr_time_grid
from uir.samplers.noise import NoiseSource
from uir.samplers.unic import unic_coefficients
from uir.sde.irsde import IRSDE


def dynamic_threshold(x0: Tensor, ratio: float, max_value: float) -> Tensor:
    """Imagen's dynamic thresholding (Saharia et al. 2022): per sample, s = clamp(quantile(|x0|,
    ratio), 1, max_value); clip x0 to [-s, s] and divide by s."""
    dtype = x0.dtype
    flat = x0.float().reshape(x0.shape[0], -1)
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(flat, -s, s) / s).reshape(x0.shape).to(dtype)


def step_coefficients(alphas: Tensor, sigmas: Tensor, lambdas: Tensor, i: int, order: int,
                      solver_type: str, parameterization: str) -> dict[str, float]:
    """The scalars of one step to grid point i, as Python floats.

    They are computed from the float32 grid arrays in float32, in the reference's order of
    operations: a step of noise prediction late in the chain divides by a small sigma, so
    the last bits of these scalars show in the output."""
    a, a_prev, s, s_prev = alphas[i], alphas[i - 1], sigmas[i], sigmas[i - 1]
    h = lambdas[i] - lambdas[i - 1]
    c: dict[str, float] = {}
    if order >= 2:
        r0 = (lambdas[i - 1] - lambdas[i - 2]) / h
        c["r0"] = float(r0)
    if order >= 3:
        r1 = (lambdas[i - 2] - lambdas[i - 3]) / h
        c["r1"], c["r0_plus_r1"] = float(r1), float(r0 + r1)
    if solver_type == "ode" and parameterization == "data":
        phi1 = torch.exp(-h) - 1
        phi2 = phi1 / h + 1
        c.update(phi1=float(phi1), phi2=float(phi2), phi3=float(phi2 / h - 0.5), x=float(s / s_prev), d=float(a),
                 mu=float(1 - s / s_prev + s / s_prev * a_prev - a))
    elif solver_type == "ode":
        phi1 = torch.exp(h) - 1
        phi2 = phi1 / h - 1
        c.update(phi1=float(phi1), phi2=float(phi2), phi3=float(phi2 / h - 0.5), x=float(a / a_prev), d=float(s),
                 mu=float(1 - a / a_prev))
    elif parameterization == "data":
        phi1 = 1 - torch.exp(-2 * h)
        c.update(x=float(s / s_prev * torch.exp(-h)), q0=float(a * phi1), d1=float(a * (1 - phi1 / 2 / h)),
                 z=float(s * torch.sqrt(phi1)), mu=float(1 - a / a_prev * torch.exp(-2 * h) - a * phi1))
    else:
        phi1 = torch.exp(h) - 1
        c.update(x=float(a / a_prev), q0=float(2 * s * phi1), d1=float(2 * s * (phi1 / h - 1)),
                 z=float(s * torch.sqrt(torch.exp(2 * h) - 1)), mu=float(1 - a / a_prev))
    return c


def divided_differences(q: list[Tensor], c: dict[str, float], order: int):
    """(D1, D2): first and second divided differences of the buffered outputs, scaled by h."""
    if order == 1:
        return None, None
    d1_0 = (q[0] - q[1]) / c["r0"]
    if order == 2:
        return d1_0, None
    d1_1 = (q[1] - q[2]) / c["r1"]
    return d1_0 + (d1_0 - d1_1) * c["r0"] / c["r0_plus_r1"], (d1_0 - d1_1) / c["r0_plus_r1"]


def ode_step(x: Tensor, mu: Tensor, q: list[Tensor], c: dict[str, float], order: int, parameterization: str) -> Tensor:
    """One ODE step of the given order from x, with the buffered outputs q (newest first)."""
    d1, d2 = divided_differences(q, c, order)
    sign = -1.0 if parameterization == "data" else 1.0
    D = c["phi1"] * q[0]
    if order >= 2:
        D = D + sign * (c["phi2"] * d1)
    if order >= 3:
        D = D + c["phi3"] * d2
    return c["x"] * x - c["d"] * D + mu * c["mu"]


def sde_step(x: Tensor, mu: Tensor, q: list[Tensor], c: dict[str, float], order: int, parameterization: str,
             z: Tensor) -> Tensor:
    """One SDE step of the given order from x, with the standard-normal draw z."""
    d1, _ = divided_differences(q, c, order)
    sign = 1.0 if parameterization == "data" else -1.0
    x_next = c["x"] * x + sign * (c["q0"] * q[0])
    if order >= 2:
        x_next = x_next + sign * (c["d1"] * d1)
    return x_next + c["z"] * z + mu * c["mu"]


@dataclass(frozen=True)
class Correction:
    """UniC for the step to grid point i: x_i^c = first-order step + w sum_m c_m (q_m - q_0)."""

    first_order: dict[str, float]
    w: float  # alpha_i (data) or -sigma_i (noise)
    c: list[float]  # the older buffered outputs' weights, then the new output's


@dataclass(frozen=True)
class MRSampler(BaseSampler):
    sde: IRSDE
    cfg: SamplerConfig
    name = "mrsampler"

    @classmethod
    def from_config(cls, sde: IRSDE, cfg: SamplerConfig) -> "MRSampler":
        max_order = 3 if cfg.solver_type == "ode" else 2
        if cfg.order > max_order:
            raise ValueError(
                f"sampler.order: {cfg.order} is not available with solver_type {cfg.solver_type!r}; "
                f"valid orders: {', '.join(map(str, range(1, max_order + 1)))}"
            )
        if cfg.corrector != "none" and cfg.solver_type != "ode":
            raise ValueError(
                f"sampler.corrector: {cfg.corrector!r} corrects ODE steps only (UniC is derived for the "
                f"probability-flow ODE); set corrector: none or solver_type: ode"
            )
        if cfg.thresholding and cfg.parameterization != "data":
            raise ValueError(
                "sampler.thresholding: dynamic thresholding clips data predictions, so it needs "
                "parameterization 'data' (got 'noise'); set thresholding: false or parameterization: data"
            )
        sampler = cls(sde, cfg)
        times = sampler.grid()[0]
        M = len(times) - 1
        if max(times) > sde.T:  # only `leading` with a large timestep_offset goes beyond the SDE
            first = max(times) - cfg.timestep_offset
            raise ValueError(f"sampler.timestep_offset: {cfg.timestep_offset} puts the {cfg.time_schedule!r} grid's "
                             f"first point at t = {max(times):g}, beyond sde.T = {sde.T}; valid offsets: 0 to "
                             f"{int(sde.T - first)} for num_sample_steps={cfg.num_sample_steps}")
        if M < 1:
            raise ValueError(f"sampler.time_schedule {cfg.time_schedule!r} gives no step for num_sample_steps={cfg.num_sample_steps}")
        if cfg.order > M:
            # The reference crashes (order 3) or, for order 2 with one step, evaluates the network
            # a second time at t_0 on a state already at t_1.
            got = f"{cfg.num_sample_steps}" + (f", {M} on the {cfg.time_schedule!r} grid" if M != cfg.num_sample_steps else "")
            raise ValueError(f"sampler.order: order {cfg.order} needs num_sample_steps >= {cfg.order} (got {got}); "
                             f"use order {' or '.join(map(str, range(1, M + 1)))}")
        return sampler

    @property
    def fit_target(self) -> str:
        return self.cfg.target_for("mrsampler")

    @property
    def parameterization(self) -> str:
        return self.cfg.parameterization

    @property
    def stochastic(self) -> bool:
        return self.cfg.solver_type == "sde"

    def grid(self) -> tuple[list[float], Tensor, Tensor, Tensor]:
        """(t_i, alpha_i, sigma_i, lambda_i) on the grid; the arrays stay float32, as in the reference."""
        sde, c = self.sde, self.cfg
        times = mr_time_grid(sde, c.time_schedule, c.num_sample_steps, lambda_min=c.lambda_min,
                             timestep_offset=c.timestep_offset, rho=c.rho)
        return times.tolist(), sde.at(sde.alphas, times), sde.at(sde.sigma_bars, times), sde.at(sde.lambdas, times)

    def plan(self, M: int) -> list[tuple[int, int]]:
        """(grid index, order) of every step. The reference's: lower-order warm-up, order
        reduction near the end when there are fewer than 10 steps, the last step at full order.
        `lower_order_final`: order min(order, i, steps left); `final_order`: the last step's."""
        cfg, order = self.cfg, self.cfg.order
        last = M - 1 if cfg.denoise_last else M
        if cfg.lower_order_final:
            steps = [(i, min(order, i, last - i + 1)) for i in range(1, last + 1)]
        else:
            steps = [(i, i) for i in range(1, order)]
            steps += [(i, min(order, M - i) if M < 10 else order) for i in range(order, M)]
            if not cfg.denoise_last:
                steps.append((M, order))
        if cfg.final_order is not None and steps:
            i, _ = steps[-1]
            steps[-1] = (i, min(cfg.final_order, i))
        return steps

    def corrections(self, plan: list[tuple[int, int]], alphas: Tensor, sigmas: Tensor, lambdas: Tensor
                    ) -> list[Correction | None]:
        """The UniC correction of every step but the last (None when `corrector` is none)."""
        cfg = self.cfg
        if cfg.corrector == "none":
            return [None] * len(plan)
        lam = lambdas.tolist()
        out: list[Correction | None] = []
        for i, order in plan[:-1]:
            w = float(alphas[i]) if cfg.parameterization == "data" else -float(sigmas[i])
            c = unic_coefficients([lam[i]] + [lam[i - 1 - m] for m in range(order)], cfg.parameterization, cfg.corrector)
            out.append(Correction(step_coefficients(alphas, sigmas, lambdas, i, 1, "ode", cfg.parameterization), w, c))
        return out + [None]

    def solve(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None
              ) -> tuple[Tensor, list[float]]:
        cfg = self.cfg
        times, alphas, sigmas, lambdas = self.grid()
        M = len(times) - 1
        plan = self.plan(M)
        coefs = [step_coefficients(alphas, sigmas, lambdas, i, order, cfg.solver_type, cfg.parameterization)
                 for i, order in plan]
        corrections = self.corrections(plan, alphas, sigmas, lambdas)
        q: list[Tensor | None] = [None] * cfg.order  # q[0] is the newest converted output

        def predict(x: Tensor, i: int) -> Tensor:
            out = model_fn(x, times[i])
            return dynamic_threshold(out, cfg.threshold_ratio, cfg.threshold_max) if cfg.thresholding else out

        x = x_T
        previous: tuple[Tensor, list[Tensor], Correction] | None = None  # the last step's start, buffer, UniC
        for (i, order), c, correction in zip(plan, coefs, corrections):
            out = predict(x, i - 1)
            if previous is not None:
                x = self.correct(*previous, out, mu)
            q.insert(0, out)
            q.pop()
            start = x
            if cfg.solver_type == "ode":
                x = ode_step(x, mu, q, c, order, cfg.parameterization)
            else:
                x = sde_step(x, mu, q, c, order, cfg.parameterization, noise(x))
            previous = None if correction is None else (start, q[:order], correction)
        if cfg.denoise_last:
            x = predict(x, M - 1)
        return x.clamp(0, 1), times

    def correct(self, start: Tensor, q: list[Tensor], k: Correction, new: Tensor, mu: Tensor) -> Tensor:
        """UniC: redo the step from `start` with the output `new` at its end point."""
        x = ode_step(start, mu, q[:1], k.first_order, 1, self.cfg.parameterization)
        for weight, q_m in zip(k.c, [*q[1:], new]):
            x = x + (k.w * weight) * (q_m - q[0])
        return x
