"""What every sampler shares: the network call convention and the result it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from uir.sde.irsde import IRSDE
from uir.sde.predictions import to_noise


class Denoiser(Protocol):
    """The network: `model(x, mu, t, text_context=..., image_context=...)` -> prediction of x's shape."""

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor: ...


@dataclass
class SampleResult:
    x: Tensor  # what the user receives
    nfe: int  # network evaluations made
    timesteps: list[float] = field(default_factory=list)  # the time points visited, start to end


class CountedModel:
    """Calls the network with fixed contexts, counts evaluations, and hands the sampler
    float32 predictions whatever precision the network ran in."""

    def __init__(self, model: Denoiser, mu: Tensor, text_context=None, image_context=None):
        self.model = model
        self.mu = mu
        self.text_context = text_context
        self.image_context = image_context
        self.nfe = 0

    def __call__(self, x: Tensor, t) -> Tensor:
        self.nfe += 1
        out = self.model(x, self.mu, t, text_context=self.text_context, image_context=self.image_context)
        return out.to(torch.float32) if out.dtype != torch.float32 and x.dtype == torch.float32 else out


def noise_prediction(output: Tensor, fit_target: str, x: Tensor, mu: Tensor, t, sde: IRSDE) -> Tensor:
    """The network's output as a noise prediction, for samplers written in terms of noise."""
    if fit_target == "noise":
        return output
    alpha, sigma = sde.alpha_sigma_at(float(t))
    return to_noise(output, fit_target, x, mu, alpha, sigma, sde.sigma_inf)
