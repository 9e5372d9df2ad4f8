"""What a time-step search (`uir.samplers.search`) aims at: the probability-flow ODE solved to
convergence from every start of a calibration batch, with the trajectory from its own x_T.

A calibration batch is sampled from `noise_draws` starts (default NOISE_DRAWS): its x_T, then prior
draws mu + sigma_inf * eps from a fixed seed (`prior_draws`), so that a few images show more of the
starts that a few steps send elsewhere. `reference_solution` solves the ODE from each start once
per batch (`Reference`, shared by the searches at every NFE); `Teacher` keeps the trajectory from
x_T at the integer times and the grid that dynamic programming finds on it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from uir.samplers.base import Denoiser
from uir.samplers.mr_steps import ode_step, step_coefficients
from uir.samplers.mrsampler import MRSampler, MRSamplerOptions
from uir.samplers.options import SamplerOptions
from uir.samplers.reference import solve_probability_flow
from uir.sde.irsde import IRSDE
from uir.sde.predictions import to_data

NOISE_DRAWS = 4  # starts per calibration image: its own x_T and three more prior draws
NOISE_SEED = 0  # the generator of those draws (on the CPU, so the same on every device)


class CountedModel:
    """The model, counting its evaluations."""

    def __init__(self, model: Denoiser):
        self.model, self.calls = model, 0

    def __call__(self, x: Tensor, mu: Tensor, t, **contexts) -> Tensor:
        self.calls += 1
        return self.model(x, mu, t, **contexts)


def prior_draws(sde: IRSDE, x_T: Tensor, mu: Tensor, draws: int) -> list[Tensor]:
    """`draws` starts for the calibration batch, each a batch like x_T: x_T itself, then draws - 1
    prior samples mu + sigma_inf * eps (eps from a CPU generator seeded with NOISE_SEED). Each is
    sampled as its own batch, so a model may tell the images apart by their place in it."""
    check_draws(draws)
    g = torch.Generator().manual_seed(NOISE_SEED)
    eps = [torch.randn(x_T.shape, generator=g, dtype=x_T.dtype).to(x_T.device) for _ in range(draws - 1)]
    return [x_T] + [sde.prior_sample(mu.to(x_T.dtype), e) for e in eps]


def check_draws(draws: int) -> None:
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"search_timesteps: noise_draws must be an integer >= 1 (starts per calibration image), "
                         f"got {draws!r}")


@dataclass(frozen=True)
class Reference:
    """The search's target for one calibration batch: the converged ODE's solution at t = 0 from each
    start and the trajectory from x_T (`Teacher`), for a network read as `fit_target`."""

    x_T: Tensor  # the calibration batch's own, before `prior_draws`
    target: Tensor  # at t = 0 from each start (`prior_draws`), one batch after another
    teacher: "Teacher"
    fit_target: str
    model_calls: int
    noise_draws: int

    def check(self, fit_target: str, x_T: Tensor, noise_draws: int) -> None:
        """ValueError unless this was solved from `x_T` with `noise_draws` starts per image for a
        network read as `fit_target`."""
        same_x_T = x_T.shape == self.x_T.shape and torch.equal(x_T, self.x_T)
        if fit_target != self.fit_target or not same_x_T or noise_draws != self.noise_draws:
            raise ValueError(f"find_timesteps: the reference was solved for a {self.fit_target} network with "
                             f"noise_draws={self.noise_draws}, and this search is for a {fit_target} network with "
                             f"noise_draws={noise_draws}{'' if same_x_T else ' from another x_T'}; compute it with "
                             "reference_solution on this batch with these options and noise_draws")


@torch.no_grad()
def reference_solution(sde: IRSDE, model: Denoiser, x_T: Tensor, mu: Tensor, *,
                       config: SamplerOptions | Mapping[str, Any] | None, substeps: int = 2, text_context=None,
                       image_context=None, noise_draws: int = NOISE_DRAWS) -> Reference:
    """The converged probability-flow ODE from every start of the batch (x_T and its `prior_draws`;
    `converged_ode`, `substeps` per unit of t), with x_T's trajectory, for `config`'s fit target:
    computed once per calibration batch and shared by the searches at every NFE
    (`find_timesteps(..., reference=)`, with the same `noise_draws`)."""
    options = MRSampler.options_from(config)
    counted, teacher = CountedModel(model), Teacher()
    contexts = {"text_context": text_context, "image_context": image_context}
    target = torch.cat([converged_ode(sde, counted, start, mu, options, substeps, contexts, teacher if k == 0 else None)
                        for k, start in enumerate(prior_draws(sde, x_T, mu, noise_draws))])
    return Reference(x_T, target, teacher, MRSampler.fit_target_of(options), counted.calls, noise_draws)


class Teacher:
    """The converged trajectory at the integer times (its states and data predictions), and the
    grid that dynamic programming finds on it."""

    def __init__(self) -> None:
        self.states: dict[int, Tensor] = {}
        self.data: dict[int, Tensor] = {}
        self.tables: dict[tuple[int, ...], dict[tuple[int, int], float]] = {}  # step costs, by candidate times

    def __call__(self, t: int, x: Tensor, x0: Tensor | None) -> None:
        self.states[t] = x.float()  # float32 is plenty for choosing a start grid, and half the memory
        if x0 is not None:
            self.data[t] = x0.float()

    def step_cost(self, sde: IRSDE, mu: Tensor, a: int, b: int) -> float:
        """The squared error of one first-order data step from the teacher's state at a to b."""
        return self.step_costs(sde, mu, [a, b])[a, b]

    def step_costs(self, sde: IRSDE, mu: Tensor, times: list[int]) -> dict[tuple[int, int], float]:
        """`step_cost` of every pair a > b of `times` (descending integer times), the schedule read
        at them once."""
        grid = torch.tensor([float(t) for t in times])
        alphas, sigma_bars, lambdas = (sde.at(v, grid) for v in (sde.alphas, sde.sigma_bars, sde.lambdas))
        costs, mu = {}, mu.float()
        for j, a in enumerate(times[:-1]):
            for k in range(j + 1, len(times)):
                pair = [j, k]
                c = step_coefficients(alphas[pair], sigma_bars[pair], lambdas[pair], 1, 1, "ode", "data")
                x = ode_step(self.states[a], mu, [self.data[a]], c, 1, "data")
                costs[a, times[k]] = (x - self.states[times[k]]).pow(2).sum().item()
        return costs

    def dp_grid(self, sde: IRSDE, mu: Tensor, nfe: int, candidates: int = 100) -> list[float]:
        """The grid of `nfe` steps from T to 0, through about `candidates` integer times, with the
        least summed `step_cost`: dynamic programming over (steps taken, time reached)."""
        stride = max(1, sde.T // candidates)
        times = sorted({sde.T, 0, *range(0, sde.T, stride)}, reverse=True)
        key = tuple(times)  # a teacher belongs to one SDE and batch: its table serves every NFE
        if key not in self.tables:
            self.tables[key] = self.step_costs(sde, mu, times)
        cost = self.tables[key]
        best: dict[int, tuple[float, list[int]]] = {sde.T: (0.0, [sde.T])}  # time -> (cost, path) after k steps
        for k in range(1, nfe + 1):
            reach = times[k:] if k < nfe else [0]
            best = {b: min((best[a][0] + cost[a, b], best[a][1] + [b]) for a in best if a > b)
                    for b in reach if any(a > b for a in best)}
        return [float(t) for t in best[0][1]]


def converged_ode(sde: IRSDE, model: Callable, x_T: Tensor, mu: Tensor, options: MRSamplerOptions,
                  substeps: int, contexts: Mapping[str, Any], teacher: Teacher | None = None) -> Tensor:
    """The probability-flow ODE's solution at t = 0 from x_T at T (float64, clipped to [0, 1]), the
    model called in x_T's dtype and its output read as the options' fit target (a velocity inverted
    exactly between the integer times too: `uir.sde.predictions`); `teacher` records the trajectory."""
    fit_target = MRSampler.fit_target_of(options)
    mu64 = mu.double()

    def x0_fn(x: Tensor, t: float, a: float, s: float) -> Tensor:
        out = model(x.to(x_T.dtype), mu, t, **contexts).double()
        return to_data(out, fit_target, x, mu64, a, s, sde.sigma_inf, exact_velocity=True)

    return solve_probability_flow(x0_fn, x_T, mu, sde, substeps=substeps, at_integer_times=teacher).clamp(0, 1)
