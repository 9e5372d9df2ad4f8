"""What every sampler shares: the public `sample` call, the network bound once, the result.

A sampler implements only its solve loop, `solve(model_fn, x_T, mu, noise)`. `sample` binds the
network once, as DPM-Solver's `model_wrapper` does: the contexts, the evaluation counter, the
float32 hand-back and the conversion from what the network was trained on (`fit_target`) to
what the solver is written in (`parameterization`), so the loop calls `model_fn(x, t)` and
reads a noise or data prediction at time t.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from uir.samplers.config import SamplerConfig
from uir.samplers.grids import euler_time_grid
from uir.samplers.noise import NoiseSource, as_noise_source
from uir.sde.irsde import IRSDE
from uir.sde.predictions import to_data, to_noise

ModelFn = Callable[[Tensor, float], Tensor]


class Denoiser(Protocol):
    """The network: `model(x, mu, t, text_context=..., image_context=...)` -> prediction of x's shape."""

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor: ...


@dataclass
class SampleResult:
    x: Tensor  # what the user receives
    nfe: int  # network evaluations made
    timesteps: list[float] = field(default_factory=list)  # the time points visited, start to end


class Sampler(Protocol):
    """What the pipeline, the trainer and the scripts call."""

    stochastic: bool

    def sample(self, model: Denoiser, x_T: Tensor, mu: Tensor, *, text_context=None, image_context=None,
               noise: NoiseSource | torch.Generator | None = None) -> SampleResult: ...


class BoundModel:
    """`model_fn(x, t)`: the network at (x, t) with its contexts, counted, in float32 whatever
    precision it ran in, as a `parameterization` ("noise" or "data") prediction. The conversion
    reads IR-SDE's (alpha_t, sigma_bar_t) at t (`IRSDE.marginals`)."""

    def __init__(self, model: Denoiser, mu: Tensor, sde: IRSDE, fit_target: str, parameterization: str,
                 text_context=None, image_context=None):
        self.model, self.mu, self.sde = model, mu, sde
        self.fit_target, self.parameterization = fit_target, parameterization
        self.text_context, self.image_context = text_context, image_context
        self.nfe = 0

    def __call__(self, x: Tensor, t: float) -> Tensor:
        self.nfe += 1
        out = self.model(x, self.mu, t, text_context=self.text_context, image_context=self.image_context)
        if out.dtype != torch.float32 and x.dtype == torch.float32:
            out = out.to(torch.float32)
        if self.fit_target == self.parameterization:
            return out
        convert = to_data if self.parameterization == "data" else to_noise
        alpha, sigma = self.sde.marginals(t)
        return convert(out, self.fit_target, x, self.mu, alpha, sigma, self.sde.sigma_inf)


class BaseSampler(ABC):
    """Owns the public `sample` call; a subclass (a frozen dataclass with an `sde` field) sets
    `name`, `fit_target`, `stochastic` and `parameterization` and writes `solve`."""

    name: ClassVar[str]
    sde: IRSDE
    fit_target: str
    stochastic: bool = False
    parameterization: str = "noise"  # what `solve` wants from model_fn

    @classmethod
    @abstractmethod
    def from_config(cls, sde: IRSDE, cfg: SamplerConfig) -> "BaseSampler":
        """The sampler that the validated `sampler:` block describes."""

    @abstractmethod
    def solve(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None
              ) -> tuple[Tensor, list[float]]:
        """The solve loop from x_T: (the final state, the time points visited)."""

    @torch.no_grad()
    def sample(self, model: Denoiser, x_T: Tensor, mu: Tensor, *, text_context=None, image_context=None,
               noise: NoiseSource | torch.Generator | None = None) -> SampleResult:
        """Run from x_T with condition mu. `noise` (a generator or a noise source) feeds the
        stochastic samplers and is required by them; deterministic ones ignore it."""
        source = as_noise_source(noise, self.name) if self.stochastic else None
        model_fn = BoundModel(model, mu, self.sde, self.fit_target, self.parameterization, text_context, image_context)
        x, times = self.solve(model_fn, x_T, mu, source)
        return SampleResult(x, model_fn.nfe, times)


@dataclass(frozen=True)
class IntegerGridSampler(BaseSampler):
    """The reference's `sde` and `posterior`: one step per point of int(linspace(1, T, N)), from
    T down, each from a noise prediction at that point (`step`)."""

    sde: IRSDE
    num_steps: int
    fit_target: str = "noise"
    stochastic = True

    @classmethod
    def from_config(cls, sde: IRSDE, cfg: SamplerConfig) -> "IntegerGridSampler":
        return cls(sde, cfg.num_sample_steps, cfg.target_for(cls.name))

    @abstractmethod
    def step(self, x: Tensor, eps: Tensor, mu: Tensor, t: int, noise: NoiseSource) -> Tensor:
        """x_{t-1} from x_t and the noise prediction eps at t."""

    def solve(self, model_fn: ModelFn, x_T: Tensor, mu: Tensor, noise: NoiseSource | None
              ) -> tuple[Tensor, list[float]]:
        grid = euler_time_grid(self.sde.T, self.num_steps)
        x = x_T
        for t in grid:
            x = self.step(x, model_fn(x, float(t)), mu, t, noise)
        return x, [float(t) for t in grid]
