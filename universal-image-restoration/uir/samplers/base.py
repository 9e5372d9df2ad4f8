"""What every sampler shares: its options, the public `sample` call, the network bound once,
the per-step callback and the result.

A sampler is a class registered under a name (`uir.samplers.registry`) that declares

    Options             its options block (`SamplerOptions` or a subclass: the keys it reads)
    default_fit_target  what it assumes the network predicts when `fit_target` is unset
    integer_steps       whether its steps move by whole IR-SDE time steps (more steps than T
                        repeat or overshoot them, and quality falls apart)
    settings()          its columns in the results tables

and writes `timesteps()` (its time grid, start to end) and `steps(model_fn, x_T, mu, noise)`, a
generator that yields a `Step` after each step. `sample` binds the network once, as DPM-Solver's
`model_wrapper` does (contexts, evaluation counter, float32 hand-back, and the conversion from
what the network was trained on to what the solver is written in), runs the steps and, when a
`callback` is given, calls it after each step (k-diffusion style) with the step's index, time,
state and the network's prediction at the step.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from uir.samplers.noise import NoiseSource, as_noise_source
from uir.samplers.options import SamplerBlock, SamplerOptions
from uir.samplers.registry import SAMPLERS
from uir.sde.irsde import IRSDE
from uir.sde.predictions import to_data, to_noise

ModelFn = Callable[[Tensor, float], Tensor]


class Denoiser(Protocol):
    """The network: `model(x, mu, t, text_context=..., image_context=...)` -> prediction of x's shape."""

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor: ...


@dataclass(frozen=True)
class Step:
    """One step of a sampler, as its callback sees it.

    i           1-based index of the step (the last one equals `SampleResult.steps`)
    t           the time the step reached
    x           the state after the step (after the last step: the sampler's result)
    prediction  the network's output at the step's first evaluation, in the parameterization the
                solver integrates ("noise" or "data"); None for a step that evaluates nothing
    denoised    the same evaluation as a data (x_0) prediction; None likewise
    evaluated_at  the time of that evaluation (usually the time of the state the step started
                from; the integer-grid samplers evaluate at their grid point); None likewise
    """

    i: int
    t: float
    x: Tensor
    prediction: Tensor | None = None
    denoised: Tensor | None = None
    evaluated_at: float | None = None


Callback = Callable[[Step], None]


@dataclass
class SampleResult:
    x: Tensor  # what the user receives
    model_calls: int  # network evaluations made
    timesteps: list[float] = field(default_factory=list)  # the time grid, start to end
    steps: int = 0  # steps taken (callbacks made)


class Sampler(Protocol):
    """What the pipeline, the trainer and the scripts call."""

    name: str
    stochastic: bool

    def sample(self, model: Denoiser, x_T: Tensor, mu: Tensor, *, text_context=None, image_context=None,
               noise: NoiseSource | torch.Generator | None = None, callback: Callback | None = None) -> SampleResult: ...


class BoundModel:
    """`model_fn(x, t)`: the network at (x, t) with its contexts, counted, in float32 whatever
    precision it ran in, as a `parameterization` ("noise" or "data") prediction. The conversion
    reads IR-SDE's (alpha_t, sigma_bar_t) at t (`IRSDE.marginals`). With `record`, it keeps the
    first evaluation since `first_call` was last cleared (what a step's callback reports)."""

    def __init__(self, model: Denoiser, mu: Tensor, sde: IRSDE, fit_target: str, parameterization: str,
                 text_context=None, image_context=None, record: bool = False):
        self.model, self.mu, self.sde = model, mu, sde
        self.fit_target, self.parameterization = fit_target, parameterization
        self.text_context, self.image_context = text_context, image_context
        self.calls = 0
        self.record = record
        self.first_call: tuple[Tensor, float, Tensor] | None = None  # (x, t, output)

    def __call__(self, x: Tensor, t: float) -> Tensor:
        self.calls += 1
        out = self.model(x, self.mu, t, text_context=self.text_context, image_context=self.image_context)
        if out.dtype != torch.float32 and x.dtype == torch.float32:
            out = out.to(torch.float32)
        if self.fit_target != self.parameterization:
            out = self.convert(out, self.fit_target, self.parameterization, x, t)
        if self.record and self.first_call is None:
            self.first_call = (x, t, out)
        return out

    def convert(self, out: Tensor, source: str, target: str, x: Tensor, t: float) -> Tensor:
        convert = to_data if target == "data" else to_noise
        alpha, sigma = self.sde.marginals(t)
        return convert(out, source, x, self.mu, alpha, sigma, self.sde.sigma_inf)

    def take_first_call(self) -> tuple[Tensor | None, Tensor | None, float | None]:
        """(prediction, denoised, time) of the recorded evaluation, and clear it."""
        if self.first_call is None:
            return None, None, None
        x, t, out = self.first_call
        self.first_call = None
        data = out if self.parameterization == "data" else self.convert(out, self.parameterization, "data", x, t)
        return out, data, float(t)


class BaseSampler:
    """A sampler of IR-SDE: `sde` and its validated `config` (an `Options` block), set once."""

    name: ClassVar[str]  # set by the registry
    Options: ClassVar[type[SamplerOptions]] = SamplerOptions
    default_fit_target: ClassVar[str] = "noise"
    parameterization: str = "noise"  # what `steps` wants from model_fn

    def __init__(self, sde: IRSDE, config: SamplerOptions | Mapping[str, Any] | None = None):
        self.sde = sde
        self.config = config if isinstance(config, self.Options) else self.options_from(config)
        self.check()

    @classmethod
    def options_from(cls, raw: SamplerOptions | SamplerBlock | Mapping[str, Any] | None) -> SamplerOptions:
        """This sampler's options from a `sampler:` block (validated, or raw: keys of other samplers
        are ignored, a key no sampler reads is an error) or from another sampler's options."""
        if isinstance(raw, SamplerOptions):
            raw = raw.to_dict()
        block = raw if isinstance(raw, SamplerBlock) else SamplerBlock.read(raw)
        return block.options_for(cls)

    def check(self) -> None:
        """Rules that need the SDE as well as the options; raise ValueError naming the key."""

    @classmethod
    def fit_target_of(cls, config: SamplerOptions) -> str:
        """What the network predicts under `config`: its `fit_target`, else this sampler's default."""
        return config.fit_target or cls.default_fit_target

    @property
    def fit_target(self) -> str:
        return self.fit_target_of(self.config)

    @property
    def stochastic(self) -> bool:
        return False

    @property
    def integer_steps(self) -> bool:
        return False

    def settings(self) -> dict[str, Any]:
        """Its columns in the results tables (solver, order, ..., as a reader compares samplers)."""
        return {"fit_target": self.fit_target}

    def timesteps(self) -> list[float]:
        """The time grid, from start to end."""
        raise NotImplementedError

    def steps(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None) -> Iterator[Step]:
        """The solve loop from x_T: a `Step` (index, time, state) after each step."""
        raise NotImplementedError

    def finish(self, x: Tensor) -> Tensor:
        """The result from the last state (MR Sampler and Heun clip it to [0, 1], as the reference)."""
        return x

    @torch.no_grad()
    def sample(self, model: Denoiser, x_T: Tensor, mu: Tensor, *, text_context=None, image_context=None,
               noise: NoiseSource | torch.Generator | None = None, callback: Callback | None = None) -> SampleResult:
        """Run from x_T with condition mu. `noise` (a generator or a noise source) feeds the
        stochastic samplers and is required by them; deterministic ones ignore it. `callback(step)`
        is called after each step; the last step's state is the result. Without a callback
        nothing is kept or converted; with one, the numbers are the same."""
        source = as_noise_source(noise, self.name) if self.stochastic else None
        model_fn = BoundModel(model, mu, self.sde, self.fit_target, self.parameterization, text_context,
                              image_context, record=callback is not None)
        x, last, count = x_T, None, 0
        for step in self.steps(model_fn, x_T, mu, source):
            count += 1
            if callback is not None:
                if last is not None:
                    callback(last)  # one step behind: the last step is reported with the result
                prediction, denoised, evaluated_at = model_fn.take_first_call()
                last = replace(step, prediction=prediction, denoised=denoised, evaluated_at=evaluated_at)
            x = step.x
        x = self.finish(x)
        if last is not None:
            callback(replace(last, x=x))
        return SampleResult(x, model_fn.calls, self.timesteps(), count)


def build_sampler(name: str, sde: IRSDE, config: SamplerOptions | SamplerBlock | Mapping[str, Any] | None = None
                  ) -> Sampler:
    """The sampler `name` (registered in `SAMPLERS`) from its options, a validated `sampler:` block
    or a raw one (keys that other samplers read are ignored). Invalid input raises ValueError
    naming the key."""
    sampler_class = SAMPLERS[name]
    return sampler_class(sde, sampler_class.options_from(config))
