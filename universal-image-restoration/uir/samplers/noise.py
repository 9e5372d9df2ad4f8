"""Where stochastic samplers get their standard-normal draws.

A noise source is any callable `noise(like) -> Tensor` returning N(0, 1) samples with
the shape, dtype and device of `like`. Samplers never touch global RNG state.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

NoiseSource = Callable[[Tensor], Tensor]


class GeneratorNoise:
    """Draws from one `torch.Generator` (on CPU or on the tensors' device)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def __call__(self, like: Tensor) -> Tensor:
        z = torch.randn(like.shape, generator=self.generator, device=self.generator.device, dtype=torch.float32)
        return z.to(device=like.device, dtype=like.dtype)


class PerSampleNoise:
    """One generator per batch element: each sample's noise is independent of its batch-mates,
    so a seeded image gets the same result whatever batch it lands in."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)

    @classmethod
    def from_seeds(cls, seeds: Iterable[int], device: str | torch.device = "cpu") -> "PerSampleNoise":
        return cls([torch.Generator(device=device).manual_seed(int(s)) for s in seeds])

    def __call__(self, like: Tensor) -> Tensor:
        if like.shape[0] != len(self.generators):
            raise ValueError(f"PerSampleNoise holds {len(self.generators)} generators but the batch has {like.shape[0]} samples")
        parts = [
            torch.randn((1, *like.shape[1:]), generator=g, device=g.device, dtype=torch.float32) for g in self.generators
        ]
        return torch.cat(parts).to(device=like.device, dtype=like.dtype)


class RecordedNoise:
    """Replays given tensors in order (e.g. the noise a reference run drew); keeps count."""

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors = list(tensors)
        self.used = 0

    def __call__(self, like: Tensor) -> Tensor:
        if self.used >= len(self.tensors):
            raise RuntimeError(f"RecordedNoise: the sampler asked for draw {self.used + 1}, but only {len(self.tensors)} were recorded")
        z = self.tensors[self.used]
        self.used += 1
        if z.shape != like.shape:
            raise ValueError(f"RecordedNoise: draw {self.used} has shape {tuple(z.shape)}, the sampler needs {tuple(like.shape)}")
        return z.to(device=like.device, dtype=like.dtype)


def as_noise_source(noise: NoiseSource | torch.Generator | None, sampler: str) -> NoiseSource:
    if noise is None:
        raise ValueError(
            f"sampler {sampler!r} is stochastic: pass noise=torch.Generator(...).manual_seed(seed) "
            f"(or a noise source such as PerSampleNoise / RecordedNoise)"
        )
    if isinstance(noise, torch.Generator):
        return GeneratorNoise(noise)
    return noise
