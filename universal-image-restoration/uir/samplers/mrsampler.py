"""MR Sampler (Li et al., "MRS: A Fast Sampler for Mean Reverting Diffusion based on ODE and
SDE Solvers", ICLR 2025): the options, the time grid, the order of each step and the loop; the
step formulas are in `uir.samplers.mr_steps`.

The first steps use lower orders (warm-up), and with fewer than 10 steps the order drops near
the end, as in the reference. Beyond the reference (all off by default): `lower_order_final`
caps each step's order by the steps left, as DPM-Solver++ does (the last step at order 1),
`final_order` sets the last step's order, and `corrector` adds UniPC's UniC corrector to the ODE
steps (`uir.samplers.unic`).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from uir.common.checks import boolean, choice, integer, number, optional
from uir.common.declared import option
from uir.samplers.base import BaseSampler, ModelFn, Step
from uir.samplers.grids import custom_timesteps, mr_time_grid, pick_custom_grid
from uir.samplers.mr_steps import OdeCoefficients, dynamic_threshold, ode_step, sde_step, step_coefficients
from uir.samplers.noise import NoiseSource
from uir.samplers.options import SamplerOptions
from uir.samplers.registry import SAMPLERS
from uir.samplers.unic import unic_coefficients

SOLVER_TYPES = ("ode", "sde")
PARAMETERIZATIONS = ("data", "noise")
TIME_SCHEDULES = ("linspace", "leading", "trailing", "karras-n", "karras-t", "linear-lambda", "integer-lambda",
                  "custom")
CORRECTORS = ("none", "unic", "unic-bh1", "unic-bh2")


@dataclass(frozen=True)
class MRSamplerOptions(SamplerOptions):
    """The reference's `MRSampler` keyword arguments, with its defaults, and ours beside them."""

    solver_type: str = option("ode", check=choice(SOLVER_TYPES), help="ode or sde")
    parameterization: str = option("data", check=choice(PARAMETERIZATIONS),
                                   help="what the solver integrates, data or noise prediction")
    order: int = option(2, check=integer(minimum=1), help="solver order (ode 1-3, sde 1-2)")
    lambda_min: float = option(-math.inf, check=number(allow=(-math.inf,)),
                               help="stop where lambda = log(alpha / sigma_bar) falls below this")
    time_schedule: str = option("linspace", check=choice(TIME_SCHEDULES),
                                help="the time grid (custom: the points of `timesteps`)")
    timesteps: tuple[float, ...] | dict[int, tuple[float, ...]] | None = option(
        None, check=optional(custom_timesteps),
        help="time_schedule custom: the time points from T down to the end (NFE + 1 of them), or a map from "
             "NFE to such a list; used as given (lambda_min and timestep_offset do not move them)")
    timestep_offset: int = option(0, check=integer(minimum=0), help="`leading` grid: shift of every point")
    rho: float = option(7.0, check=number(0, open_low=True), help="Karras grids: exponent")
    thresholding: bool = option(False, check=boolean, help="dynamic thresholding of data predictions")
    threshold_ratio: float = option(0.995, check=number(0, 1), help="thresholding: quantile of |x0|")
    threshold_max: float = option(1.5, check=number(1), help="thresholding: largest scale")
    denoise_last: bool = option(False, check=boolean, help="end with the network's x0 instead of a step")
    # Beyond the reference (issue 15); the defaults keep the reference's steps.
    lower_order_final: bool = option(False, check=boolean,
                                     help="each step's order capped by the steps left, the last at 1 "
                                          "(DPM-Solver++ / diffusers)")
    final_order: int | None = option(None, check=optional(integer(minimum=1)),
                                     help="the last step's order alone (1..order)")
    corrector: str = option("none", check=choice(CORRECTORS),
                            help="ODE: UniPC's UniC corrector, no extra NFE (B(h) = h or e^h - 1)")

    def __post_init__(self) -> None:
        if self.time_schedule == "custom" and self.timesteps is None:
            raise ValueError("sampler.timesteps: time_schedule custom needs the time points: a list from T down to "
                             "the end (NFE + 1 points), or a map from NFE to such a list")
        if self.time_schedule != "custom" and self.timesteps is not None:
            raise ValueError(f"sampler.timesteps: read only with time_schedule: custom (got {self.time_schedule!r}); "
                             "set time_schedule: custom, or remove timesteps")
        max_order = 3 if self.solver_type == "ode" else 2
        if self.order > max_order:
            raise ValueError(f"sampler.order: {self.order} is not available with solver_type {self.solver_type!r}; "
                             f"valid orders: {', '.join(map(str, range(1, max_order + 1)))}")
        if self.final_order is not None and self.final_order > self.order:
            raise ValueError(f"sampler.final_order: must lie between 1 and sampler.order ({self.order}), "
                             f"got {self.final_order}")
        if self.corrector != "none" and self.solver_type != "ode":
            raise ValueError(f"sampler.corrector: {self.corrector!r} corrects ODE steps only (UniC is derived for the "
                             f"probability-flow ODE); set corrector: none or solver_type: ode")
        if self.thresholding and self.parameterization != "data":
            raise ValueError("sampler.thresholding: dynamic thresholding clips data predictions, so it needs "
                             "parameterization 'data' (got 'noise'); set thresholding: false or parameterization: data")


@dataclass(frozen=True)
class Correction:
    """UniC for the step to grid point i: x_i^c = first-order step + w sum_m c_m (q_m - q_0)."""

    first_order: OdeCoefficients
    w: float  # alpha_i (data) or -sigma_i (noise)
    c: list[float]  # the older buffered outputs' weights, then the new output's


@SAMPLERS.register("mrsampler")
class MRSampler(BaseSampler):
    Options = MRSamplerOptions
    config: MRSamplerOptions
    default_fit_target = "data"

    def check(self) -> None:
        cfg, sde = self.config, self.sde
        times = self.timesteps()
        M = len(times) - 1
        if max(times) > sde.T:  # only `leading` with a large timestep_offset goes beyond the SDE
            first = max(times) - cfg.timestep_offset
            raise ValueError(f"sampler.timestep_offset: {cfg.timestep_offset} puts the {cfg.time_schedule!r} grid's "
                             f"first point at t = {max(times):g}, beyond sde.T = {sde.T}; valid offsets: 0 to "
                             f"{int(sde.T - first)} for num_sample_steps={cfg.num_sample_steps}")
        if M < 1:
            raise ValueError(f"sampler.time_schedule {cfg.time_schedule!r} gives no step for "
                             f"num_sample_steps={cfg.num_sample_steps}")
        if cfg.order > M:
            # The reference crashes (order 3) or, for order 2 with one step, evaluates the network
            # a second time at t_0 on a state already at t_1.
            got = f"{cfg.num_sample_steps}" + (f", {M} on the {cfg.time_schedule!r} grid" if M != cfg.num_sample_steps else "")
            raise ValueError(f"sampler.order: order {cfg.order} needs num_sample_steps >= {cfg.order} (got {got}); "
                             f"use order {' or '.join(map(str, range(1, M + 1)))}")

    @property
    def parameterization(self) -> str:  # type: ignore[override]
        return self.config.parameterization

    @property
    def stochastic(self) -> bool:
        return self.config.solver_type == "sde"

    def settings(self) -> dict[str, Any]:
        cfg = self.config
        final = ", ".join(([] if not cfg.lower_order_final else ["lower order"])
                          + ([] if cfg.final_order is None else [f"last at order {cfg.final_order}"])) or "reference"
        return {"solver": cfg.solver_type, "order": cfg.order, "parameterization": cfg.parameterization,
                "fit_target": self.fit_target, "schedule": cfg.time_schedule, "final_steps": final,
                "corrector": cfg.corrector}

    def grid(self) -> tuple[list[float], Tensor, Tensor, Tensor]:
        """(t_i, alpha_i, sigma_i, lambda_i) on the grid; the arrays stay float32, as in the reference."""
        sde, c = self.sde, self.config
        if c.time_schedule == "custom":
            times = pick_custom_grid(c.timesteps, c.num_sample_steps, sde.T)  # type: ignore[arg-type]
        else:
            times = mr_time_grid(sde, c.time_schedule, c.num_sample_steps, lambda_min=c.lambda_min,
                                 timestep_offset=c.timestep_offset, rho=c.rho)
        return times.tolist(), sde.at(sde.alphas, times), sde.at(sde.sigma_bars, times), sde.at(sde.lambdas, times)

    def timesteps(self) -> list[float]:
        return self.grid()[0]

    def plan(self, M: int) -> list[tuple[int, int]]:
        """(grid index, order) of every step. The reference's: lower-order warm-up, order
        reduction near the end when there are fewer than 10 steps, the last step at full order.
        `lower_order_final`: order min(order, i, steps left); `final_order`: the last step's."""
        cfg, order = self.config, self.config.order
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
        cfg = self.config
        if cfg.corrector == "none":
            return [None] * len(plan)
        lam = lambdas.tolist()
        out: list[Correction | None] = []
        for i, order in plan[:-1]:
            w = float(alphas[i]) if cfg.parameterization == "data" else -float(sigmas[i])
            c = unic_coefficients([lam[i]] + [lam[i - 1 - m] for m in range(order)], cfg.parameterization, cfg.corrector)
            first_order = step_coefficients(alphas, sigmas, lambdas, i, 1, "ode", cfg.parameterization)
            out.append(Correction(first_order, w, c))  # type: ignore[arg-type]
        return out + [None]

    def finish(self, x: Tensor) -> Tensor:
        return x.clamp(0, 1)

    def steps(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None) -> Iterator[Step]:
        """The loop. With a corrector, a step's state is the predictor's: UniC corrects it at the
        start of the next step, with that step's network output."""
        cfg = self.config
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
        for k, ((i, order), c, correction) in enumerate(zip(plan, coefs, corrections), start=1):
            out = predict(x, i - 1)
            if previous is not None:
                x = self.correct(*previous, out, mu)
            q.insert(0, out)
            q.pop()
            start = x
            if cfg.solver_type == "ode":
                x = ode_step(x, mu, q, c, order, cfg.parameterization)  # type: ignore[arg-type]
            else:
                x = sde_step(x, mu, q, c, order, cfg.parameterization, noise(x))  # type: ignore[arg-type]
            previous = None if correction is None else (start, q[:order], correction)
            yield Step(k, times[i], x)
        if cfg.denoise_last:
            yield Step(len(plan) + 1, times[M], predict(x, M - 1))

    def correct(self, start: Tensor, q: list[Tensor], k: Correction, new: Tensor, mu: Tensor) -> Tensor:
        """UniC: redo the step from `start` with the output `new` at its end point."""
        x = ode_step(start, mu, q[:1], k.first_order, 1, self.config.parameterization)
        for weight, q_m in zip(k.c, [*q[1:], new]):
            x = x + (k.w * weight) * (q_m - q[0])
        return x
