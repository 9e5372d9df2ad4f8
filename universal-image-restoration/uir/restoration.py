"""`Restorer`: the one way to restore a batch of images, shared by test.py, the benchmark and
training's validation. IR-SDE + the network as the samplers call it (+ DA-CLIP contexts) on a
device. `restore(lq, seeds, sampler)` draws each image's prior sample and sampling noise from
its own generator seeded with its seed, so an image's result does not depend on its batch, and
says which images came out non-finite (and at which network call it started), so that no NaN
is ever scored as a result.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from uir.runtime import auto_batch_size
from uir.samplers import PerSampleNoise
from uir.samplers.base import Callback, Denoiser, Sampler, Step
from uir.sde.irsde import IRSDE

Contexts = tuple[Tensor | None, Tensor | None]  # (image context, degradation context)


def finite_per_image(x: Tensor) -> Tensor:
    """[B] bool: whether every value of each image of `x` is finite (stays on the device)."""
    return torch.isfinite(x).flatten(1).all(dim=1)


class FiniteWatch:
    """The network as the samplers call it, noting per image the first call whose output is not
    finite (0: none). The note stays on the device: no synchronisation per call."""

    def __init__(self, denoiser: Denoiser, batch: int, device: torch.device):
        self.denoiser = denoiser
        self.calls = 0
        self.first_bad = torch.zeros(batch, dtype=torch.long, device=device)

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor:
        out = self.denoiser(x, mu, t, text_context=text_context, image_context=image_context)
        self.calls += 1
        fresh = (self.first_bad == 0) & ~finite_per_image(out)
        self.first_bad = torch.where(fresh, torch.full_like(self.first_bad, self.calls), self.first_bad)
        return out


@dataclass
class Restoration:
    """A restored batch: `x` [B,3,H,W], the network evaluations (`model_calls`), and per image whether the result
    is finite and the first network call (1-based, 0: none) whose output was not."""

    x: Tensor
    model_calls: int
    finite: Tensor
    first_bad_call: Tensor

    def failures(self) -> dict[int, str]:
        """{position in the batch: why} for the images that must not be scored (one device sync)."""
        finite, first = self.finite.tolist(), self.first_bad_call.tolist()
        return {k: "non-finite output" + (f" (the network's output first went non-finite at call {c} of {self.model_calls})"
                                          if c else " (the network's outputs were finite; the sampler's arithmetic overflowed)")
                for k, (ok, c) in enumerate(zip(finite, first)) if not ok or c}


@dataclass(frozen=True)
class Restorer:
    sde: IRSDE
    denoiser: Denoiser  # (x, mu, t, text_context=, image_context=) -> float32 prediction
    encoder: Callable[[Tensor], Contexts] | None  # DA-CLIP: LQ in [0, 1] -> contexts
    device: torch.device

    def contexts(self, lq: Tensor) -> Contexts:
        """DA-CLIP's (image, degradation) contexts of a batch of LQ images in [0, 1], or (None, None)."""
        return self.encoder(lq) if self.encoder is not None else (None, None)

    def restore(self, lq: Tensor, seeds: Sequence[int], sampler: Sampler, contexts: Contexts | None = None,
                callback: Callback | None = None) -> Restoration:
        """Restore a batch of LQ images `lq` [B,3,H,W] in [0, 1]: draw x_T = mu + sigma_inf z from
        each image's generator (seeded by `seeds`), then sample; stochastic samplers keep drawing
        from it. `contexts` default to DA-CLIP's of `lq`. `callback` sees `Step(0, t_start, x_T)`
        first (the prior sample at the start of the sampler's grid), then every step of the
        sampler (`Sampler.sample`); it changes no number."""
        image_context, text_context = self.contexts(lq) if contexts is None else contexts
        noise = PerSampleNoise.from_seeds(seeds, lq.device)
        x_T = self.sde.prior_sample(lq, noise(lq))
        if callback is not None:
            grid = sampler.timesteps() if hasattr(sampler, "timesteps") else [float(self.sde.T)]
            callback(Step(0, float(grid[0]), x_T))
        watch = FiniteWatch(self.denoiser, lq.shape[0], lq.device)
        result = sampler.sample(watch, x_T, lq, text_context=text_context, image_context=image_context, noise=noise,
                                callback=callback)
        return Restoration(result.x, result.model_calls, finite_per_image(result.x), watch.first_bad)

    def probe(self, batch: int, height: int, width: int) -> None:
        """One network call, with DA-CLIP's contexts, on random images of this shape: what
        `auto_batch_size` measures, and a warm-up of kernels and compilation."""
        mu = torch.rand(batch, 3, height, width, device=self.device)
        x = torch.rand(batch, 3, height, width, device=self.device)  # not `mu`: compile guards on aliasing
        with torch.no_grad():
            image_context, degra_context = self.contexts(mu)
            self.denoiser(x, mu, float(self.sde.T), image_context=image_context, text_context=degra_context)

    def auto_batch_size(self, height: int, width: int) -> int:
        """`batch_size: auto` for images up to ``height x width``: from free GPU memory, 1 on the CPU."""
        return auto_batch_size(lambda batch: self.probe(batch, height, width), self.device)
