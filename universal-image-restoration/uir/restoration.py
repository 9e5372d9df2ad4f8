"""`Restorer`: the one way to restore a batch of images, shared by test.py, the benchmark and
training's validation. IR-SDE + the network as the samplers call it (+ DA-CLIP contexts) on a
device. `restore(lq, seeds, sampler)` draws each image's prior sample and sampling noise from
its own generator seeded with its seed, so an image's result does not depend on its batch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from uir.samplers import PerSampleNoise, SampleResult
from uir.samplers.base import Denoiser
from uir.runtime import auto_batch_size
from uir.samplers.registry import Sampler
from uir.sde.irsde import IRSDE

Contexts = tuple[Tensor | None, Tensor | None]  # (image context, degradation context)


@dataclass(frozen=True)
class Restorer:
    sde: IRSDE
    denoiser: Denoiser  # (x, mu, t, text_context=, image_context=) -> float32 prediction
    encoder: Callable[[Tensor], Contexts] | None  # DA-CLIP: LQ in [0, 1] -> contexts
    device: torch.device

    def contexts(self, lq: Tensor) -> Contexts:
        """DA-CLIP's (image, degradation) contexts of a batch of LQ images in [0, 1], or (None, None)."""
        return self.encoder(lq) if self.encoder is not None else (None, None)

    def restore(self, lq: Tensor, seeds: Sequence[int], sampler: Sampler, contexts: Contexts | None = None) -> SampleResult:
        """Restore a batch of LQ images `lq` [B,3,H,W] in [0, 1]: draw x_T = mu + sigma_inf z from
        each image's generator (seeded by `seeds`), then sample; stochastic samplers keep drawing
        from it. `contexts` default to DA-CLIP's of `lq`."""
        image_context, text_context = self.contexts(lq) if contexts is None else contexts
        noise = PerSampleNoise.from_seeds(seeds, lq.device)
        x_T = self.sde.prior_sample(lq, noise(lq))
        return sampler.sample(self.denoiser, x_T, lq, text_context=text_context, image_context=image_context,
                              noise=noise)

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
