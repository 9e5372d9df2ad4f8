"""MR Sampler's time steps searched for the model at hand (issue 22), instead of a fixed formula.

    times = search_timesteps(sde, network, x_T, mu, nfe=5, config={"order": 2, "fit_target": "noise"})
    build_sampler("mrsampler", sde, {..., "time_schedule": "custom", "timesteps": times})

The target is the probability-flow ODE solved to convergence from the same x_T
(`uir.samplers.search_target`, float64), once per calibration batch. A grid's error compares MR
Sampler's output on it (with every other setting of `config`) with that target, both clipped to
[0, 1] as the sampler's output is, through the images' RMSEs (`batch_error`, an objective of
`OBJECTIVES` by name). By default `balanced`: the geometric mean of the batch's RMSE and of the
geometric mean of the images' RMSEs. On a multimodal problem at five steps some draws end at
another mode than the converged ODE: the batch's RMSE alone (`rms`) follows the few the batch
holds and may pick a grid worse on every other draw; the geometric mean alone (`geometric`)
hardly sees them and may pick a grid that sends more draws to another mode (docs/timestep_search.md).
The calibration batch is sampled from `noise_draws` starts (default 4): its x_T, and more prior
draws x_T = mu + sigma_inf * eps from a fixed generator (`search_target.prior_draws`), so that a
few images show more of the starts that a few steps send elsewhere (on the study's mixtures,
calibrated on 16 draws and scored on 256 others, it brought the worst of eight grids at NFE 5 from
0.94 to 0.67 of the paper's grid's error, and from 1.28 to 0.95 on the check mixture).

The method, chosen by measuring (docs/timestep_search.md, scripts/search_methods.py): a pattern
search on the interior points in lambda = log(alpha / sigma_bar), both ends fixed (T, and the end
of the options' own grid). It starts from the best of a few grids: the options' own, linspace,
linear-lambda, integer-lambda, karras-t (all from T), and an OSD-style one (Pei et al. 2025):
dynamic programming over the integer times for the least summed error of first-order steps from
the converged trajectory's states, which the reference solution yields at no extra cost. It moves
one point at a time by +-step while that lowers the error, and halves the step when no point
moves, until the step is below `min_step` or `max_evaluations` grids were tried (`restarts`: from
that many of the best starts, sharing the budget; two did no better than one). From NFE 6 on a move
may not make a step in lambda more than twice its neighbour (`max_step_ratio`): unbounded, the
search spends points as near-duplicate pairs fitted to the calibration draws, and on held-out draws
of the study's mixtures such grids sent more of them to another mode than the paper's grid; at NFE 5
the bound made grids worse; at NFE 20 without a corrector the unbounded grid sent a draw to another
mode, while with UniC the bound cost accuracy on all four of the study's oracles (1.3 to 23 times
the unbounded grid's error, no draw changing mode), so with a corrector it holds below NFE 20 only
(docs/timestep_search.md). Points are rounded to 1e-3 before they are tried, so the grid returned
is exactly the one measured (`decimals`; a tuple searches coarse to fine: (0, 3) first at IR-SDE's
integer times, the only times where the samplers' (the reference's) velocity formula inverts a
velocity network exactly (`uir.sde.predictions`; between them it is off by up to 2e-4 of x_0 - mu),
then at 1e-3: on the study's Gaussian oracles, fit to velocity, it took the searched grids' error
from 4e-5..1e-4 to 3e-6..3e-5, but on the test's small mixture it did worse on the held-out draws,
so it is not the default; docs/timestep_search.md). Deterministic for the same inputs (the extra draws come from a fixed
seed).

Cost in network evaluations of a batch the calibration batch's size (`SearchOutcome.model_calls`),
for each of the noise_draws starts: T * reference_substeps for the target (200 with the defaults
and T = 100), then NFE per grid tried (the options' own grid, each start, each move): at most
noise_draws * (T * reference_substeps + NFE * (max_evaluations + 1)), max_evaluations being 30 * NFE
by default. Searches at several NFEs on one batch share the target: compute it once with
`reference_solution` and pass it as `reference=` (its calls are then not counted again).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from uir.samplers.base import Denoiser
from uir.samplers.grids import mr_time_grid
from uir.samplers.mrsampler import MRSampler, MRSamplerOptions
from uir.samplers.options import SamplerOptions
from uir.samplers.search_target import (NOISE_DRAWS, CountedModel, Reference, check_draws, prior_draws,
                                        reference_solution)
from uir.sde.irsde import IRSDE, interp

START_SCHEDULES = ("linspace", "linear-lambda", "integer-lambda", "karras-t")
DECIMALS = 3  # time points are rounded to this many decimals before they are tried
STEP_RATIO = 2.0  # with max_step_ratio="auto": no step in lambda more than twice its neighbour's ...
BOUNDED_FROM_NFE = 6  # ... from this NFE on (docs/timestep_search.md, "The step ratio") ...
CORRECTED_FREE_FROM_NFE = 20  # ... and, with a corrector, below this NFE only


@dataclass(frozen=True)
class SearchOutcome:
    """What a search found and what it cost."""

    timesteps: list[float]  # from T down to the end point, NFE + 1 of them
    error: float  # the calibration batch's `objective` on `timesteps`
    own_error: float  # the same on the options' own grid
    start: str  # the start grid the search moved from
    start_error: float
    evaluations: int  # grids tried (sampler runs)
    model_calls: int  # network evaluations in all, the reference solution's included unless it was given
    max_step_ratio: float | None  # the bound on adjacent steps' ratio in lambda the search kept (None: none)
    decimals: tuple[int, ...]  # the points' rounding, decimals of t, coarse to fine (0: IR-SDE's integer times)


def _geometric(per_image: Tensor) -> Tensor:
    """Every image counts by its relative gain."""
    return per_image.clamp_min(1e-12).log().mean().exp()


def _rms(per_image: Tensor) -> Tensor:
    """The RMSE over all the batch's pixels: an image at another mode counts by its whole error."""
    return per_image.pow(2).mean().sqrt()


def _balanced(per_image: Tensor) -> Tensor:
    """Both: the typical image's relative gain, and the draws that end at another mode."""
    return (_geometric(per_image) * _rms(per_image)).sqrt()


OBJECTIVES: dict[str, Callable[[Tensor], Tensor]] = {"balanced": _balanced, "geometric": _geometric, "rms": _rms}
DEFAULT_OBJECTIVE = "balanced"


def batch_error(x: Tensor, target: Tensor, objective: str = DEFAULT_OBJECTIVE) -> float:
    """The error of a batch `x` against `target` by `objective` (a name of `OBJECTIVES`), from the
    images' RMSEs."""
    _check_objective(objective)
    per_image = (x.double() - target).pow(2).flatten(1).mean(1).sqrt()
    return OBJECTIVES[objective](per_image).item()


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"search_timesteps: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def search_timesteps(sde: IRSDE, model: Denoiser, x_T: Tensor, mu: Tensor, *, nfe: int,
                     config: SamplerOptions | Mapping[str, Any] | None, text_context=None, image_context=None,
                     **settings: Any) -> list[float]:
    """The searched time points for MR Sampler with `config` at `nfe` steps, from T down to the end
    point (`find_timesteps` says more; `settings` are its keywords)."""
    return find_timesteps(sde, model, x_T, mu, nfe=nfe, config=config, text_context=text_context,
                          image_context=image_context, **settings).timesteps


@torch.no_grad()
def find_timesteps(sde: IRSDE, model: Denoiser, x_T: Tensor, mu: Tensor, *, nfe: int,
                   config: SamplerOptions | Mapping[str, Any] | None, text_context=None, image_context=None,
                   reference_substeps: int = 2, max_evaluations: int | None = None, min_step: float = 0.01,
                   starts: Mapping[str, list[float]] | None = None, restarts: int = 1,
                   reference: Reference | None = None, objective: str = DEFAULT_OBJECTIVE,
                   noise_draws: int = NOISE_DRAWS, max_step_ratio: float | str | None = "auto",
                   decimals: int | tuple[int, ...] = DECIMALS, log: Callable[[str], None] | None = None) -> SearchOutcome:
    """Search the grid (see the module's docstring). `reference_substeps`: the converged ODE's steps
    per unit of t; `reference`: that solution already computed for this batch (`reference_solution`),
    instead; `max_evaluations`: grids tried at most (default 30 per step); `min_step`: the
    smallest move in lambda; `starts`: more start grids by name (any number of steps: each is
    resampled to `nfe` steps, e.g. the grid searched for fewer steps); `restarts`: how many of the
    best start grids are searched from, sharing the budget (the best result wins); `objective`: the
    error a grid is ranked by (a name of `OBJECTIVES`); `noise_draws`: the starts per calibration image
    (`prior_draws`); `max_step_ratio`: the largest ratio of two adjacent steps in lambda a move may
    make (a grid above it may still move, not further above; None: any; "auto": STEP_RATIO from
    BOUNDED_FROM_NFE steps on, with a corrector below CORRECTED_FREE_FROM_NFE only, else any);
    `decimals`: the decimals of t the points are rounded to, or several, coarse to fine (each start
    is searched at each in turn, with the budget left); `log`: a line per improvement."""
    max_evaluations = 30 * nfe if max_evaluations is None else max_evaluations
    options = search_options(config, nfe)
    ratio = step_ratio_bound(max_step_ratio, nfe, options.corrector)
    resolutions = point_decimals(decimals)
    _check_objective(objective)
    check_draws(noise_draws)
    counted = CountedModel(model)
    contexts = {"text_context": text_context, "image_context": image_context}
    if reference is None:
        reference = reference_solution(sde, counted, x_T, mu, config=options, substeps=reference_substeps,
                                       noise_draws=noise_draws, **contexts)
    reference.check(MRSampler.fit_target_of(options), x_T, noise_draws)
    draws = prior_draws(sde, x_T, mu, noise_draws)
    target, teacher = reference.target, reference.teacher

    def error(times: list[float] | None) -> float:
        sampler = MRSampler(sde, options if times is None else
                            options.with_overrides(time_schedule="custom", timesteps=times))
        x = torch.cat([sampler.sample(counted, draw, mu, **contexts).x for draw in draws])
        return batch_error(x, target, objective)

    own = MRSampler(sde, options).timesteps()
    own_error = error(None)
    end = own[-1]
    lam = Lambda(sde)
    extra = {name: resample(times, nfe, lam) for name, times in (starts or {}).items()}
    if end == 0:
        extra["dynamic programming"] = teacher.dp_grid(sde, mu, nfe)
    grids = start_grids(sde, nfe, end, own, extra, resolutions[0])
    scored = {name: error(times) for name, times in grids.items()}
    evaluations = len(grids)
    ranked = sorted(scored, key=lambda name: scored[name])[:restarts]
    step = (lam.of(end) - lam.of(float(sde.T))) / (2 * nfe)
    results = []
    for k, name in enumerate(ranked):  # the budget left, shared by the starts left
        budget = (max_evaluations - evaluations) // (len(ranked) - k)
        times, best = grids[name], scored[name]
        for d in resolutions:
            times, best, used = pattern_search(times, best, error, lam, step, min_step, budget, log,
                                               max_ratio=ratio, decimals=d)
            evaluations, budget = evaluations + used, budget - used
        results.append((best, k, times, name))
    best, _, times, start = min(results)
    return SearchOutcome(times, best, own_error, start, scored[start], evaluations, counted.calls, ratio,
                         resolutions)


def pattern_search(times: list[float], best: float, error: Callable[[list[float]], float], lam: "Lambda",
                   step: float, min_step: float, budget: int, log: Callable[[str], None] | None,
                   max_ratio: float | None = None, decimals: int = DECIMALS) -> tuple[list[float], float, int]:
    """From `times` (error `best`): move one interior point at a time by +-step in lambda while
    that lowers the error (the other way only when this way did not help); halve the step when no
    point moved. A move may not make two adjacent steps in lambda differ by more than `max_ratio`
    (or than they already do). Points are rounded to `decimals` of t. Returns the grid, its error
    and the grids tried, at most `budget`."""
    used = 0
    while step >= min_step and used < budget:
        moved = False
        for j in range(1, len(times) - 1):
            for direction in (1.0, -1.0):
                went = False
                while used < budget:
                    trial = _moved(times, j, direction * step, lam, decimals)
                    if trial is None or (max_ratio is not None
                                         and lam.step_ratio(trial) > max(max_ratio, lam.step_ratio(times))):
                        break
                    e = error(trial)
                    used += 1
                    if not e < best:
                        break
                    times, best, went = trial, e, True
                    if log is not None:
                        log(f"  error {best:.3e}  {times}")
                moved |= went
                if went:
                    break
        if not moved:
            step /= 2
    return times, best, used


def step_ratio_bound(max_step_ratio: float | str | None, nfe: int, corrector: str = "none") -> float | None:
    """The bound on adjacent steps' ratio a search at `nfe` steps with `corrector` keeps (None:
    none); ValueError unless `max_step_ratio` is "auto", None or a number >= 1."""
    if max_step_ratio == "auto":
        last = CORRECTED_FREE_FROM_NFE if corrector != "none" else math.inf
        return STEP_RATIO if BOUNDED_FROM_NFE <= nfe < last else None
    if max_step_ratio is None:
        return None
    if isinstance(max_step_ratio, bool) or not isinstance(max_step_ratio, (int, float)) or not max_step_ratio >= 1:
        raise ValueError(f"search_timesteps: max_step_ratio must be a number >= 1 (the largest ratio of two adjacent "
                         f"steps in lambda), None (any) or 'auto', got {max_step_ratio!r}")
    return float(max_step_ratio)


def point_decimals(decimals: int | tuple[int, ...], name: str = "search_timesteps: decimals") -> tuple[int, ...]:
    """The decimals of t a search rounds its points to, coarse to fine; ValueError, naming the
    setting as `name`, unless `decimals` is an integer >= 0 or a non-empty tuple of them, increasing."""
    many = tuple(decimals) if isinstance(decimals, (tuple, list)) else (decimals,)
    if not many or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in many) \
            or any(b <= a for a, b in zip(many, many[1:])):
        raise ValueError(f"{name} must be an integer >= 0 (the decimals of t the points are "
                         f"rounded to; 0: IR-SDE's integer times) or several, increasing (coarse to fine, e.g. "
                         f"(0, 3)), got {decimals!r}")
    return many


def search_options(config: SamplerOptions | Mapping[str, Any] | None, nfe: int) -> MRSamplerOptions:
    """MR Sampler's options that a search at `nfe` steps runs with; ValueError naming what cannot be
    searched (a stochastic solver, too few steps for the order)."""
    options = MRSampler.options_from(config)
    if options.solver_type != "ode":
        raise ValueError(f"search_timesteps: solver_type {options.solver_type!r} samples, it does not solve the "
                         "probability-flow ODE the search aims at; search with solver_type: ode")
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < max(2, options.order):
        raise ValueError(f"search_timesteps: nfe must be an integer >= {max(2, options.order)} "
                         f"(the order, and one interior point), got {nfe!r}")
    if options.time_schedule == "custom":  # start from linspace; the given points are one start
        return options.with_overrides(num_sample_steps=nfe, time_schedule="linspace", timesteps=None)
    return options.with_overrides(num_sample_steps=nfe)


class Lambda:
    """lambda(t) = log(alpha_t / sigma_bar_t) and its inverse, interpolated as the samplers' grids."""

    def __init__(self, sde: IRSDE):
        self.t = sde.timeline.double()
        self.lam = sde.lambdas.double()

    def of(self, t: float) -> float:
        return float(interp(torch.tensor([t], dtype=torch.float64), self.t, self.lam))

    def time(self, lam: float) -> float:
        return float(interp(torch.tensor([lam], dtype=torch.float64), self.lam.flip(0), self.t.flip(0)))

    def step_ratio(self, times: list[float]) -> float:
        """The largest ratio of two adjacent steps of `times` in lambda (1 for a single step)."""
        points = [self.of(t) for t in times]
        steps = [b - a for a, b in zip(points, points[1:])]
        return max([max(a / b, b / a) for a, b in zip(steps, steps[1:])], default=1.0)


def start_grids(sde: IRSDE, nfe: int, end: float, own: list[float], extra: Mapping[str, list[float]],
                decimals: int = DECIMALS) -> dict[str, list[float]]:
    """The grids the search may start from (the options' own, the standard ones, `extra`), each from
    T to `end`, rounded, distinct."""
    out: dict[str, list[float]] = {}
    candidates: dict[str, list[float]] = {"own": own, **extra}
    for schedule in START_SCHEDULES:
        try:
            candidates[schedule] = mr_time_grid(sde, schedule, nfe).tolist()
        except ValueError:  # integer-lambda has no room for very many steps
            continue
    for name, times in candidates.items():
        grid = [float(sde.T)] + [float(round(t, decimals)) for t in times[1:-1]] + [end]
        if _valid(grid) and grid not in out.values():
            out[name] = grid
    if not out:
        raise ValueError(f"search_timesteps: no start grid with {nfe} steps between T = {sde.T} and {end:g}")
    return out


def resample(times: list[float], nfe: int, lam: Lambda) -> list[float]:
    """A grid of `nfe` steps with the shape of `times` (any number of steps): lambda as a piecewise
    linear function of the step fraction, read at nfe + 1 equal fractions; the ends kept."""
    points = torch.tensor([lam.of(t) for t in times], dtype=torch.float64)
    fractions = torch.linspace(0, 1, len(times), dtype=torch.float64)
    wanted = torch.linspace(0, 1, nfe + 1, dtype=torch.float64)
    inner = [lam.time(float(v)) for v in interp(wanted, fractions, points)[1:-1]]
    return [times[0]] + inner + [times[-1]]


def _moved(times: list[float], j: int, delta: float, lam: Lambda, decimals: int = DECIMALS) -> list[float] | None:
    """`times` with point j moved by `delta` in lambda and rounded to `decimals`, or None when that
    breaks the order or rounds back."""
    t = float(round(lam.time(lam.of(times[j]) + delta), decimals))
    trial = times[:j] + [t] + times[j + 1:]
    return trial if _valid(trial) and t != times[j] else None


def _valid(times: list[float]) -> bool:
    return all(math.isfinite(t) for t in times) and all(b < a for a, b in zip(times, times[1:]))
