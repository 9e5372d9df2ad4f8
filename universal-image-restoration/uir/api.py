"""Restoring images from Python, with the network, DA-CLIP, IR-SDE and sampler that an options
file (or keyword blocks) describes; no folders, no run.

    from uir import ImageRestorer
    restorer = ImageRestorer.from_file("options/demo.yml")
    restored = restorer(lq)                              # lq: uint8 [H, W, 3] -> uint8 [H, W, 3]
    restored = restorer([a, b, c], sampler="posterior", nfe=100)   # any sizes, any number
    by_point = restorer.sweep(images, [{"label": "MRS-2", "sampler": "mrsampler", "nfe": [5, 10]}])

Images are numpy arrays ``[H, W, 3]`` (uint8, or float in [0, 1]) or tensors ``[3, H, W]`` in
[0, 1], one at a time, as a batch (``[B, ...]``) or as a list of mixed sizes; the result has the
input's form (uint8 in, uint8 out, quantised as the reference's ``tensor2img``; float in, float
out, clamped to [0, 1]). Image i of a call draws its noise from a generator seeded with
``seed + i``, as image i of a task in test.py, so the same image at the same position gives the
bytes test.py writes. Equal sizes are restored together, ``batch_size`` at a time.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from uir.data import group_by_size
from uir.evaluation.sweep import build_sampler_for, load_restorer
from uir.metrics import quantize_to_uint8
from uir.options import load_with, parse_restorer_options
from uir.options.restorer import RestorerOptions
from uir.options.sweep import SweepPoint, SweepRun
from uir.restoration import Restorer


class NonFiniteResult(RuntimeError):
    """A restored image is NaN or infinite (a broken network or setting); never returned as a result."""


class ImageRestorer:
    def __init__(self, options: RestorerOptions):
        device = options.runtime.resolve_device()
        self.options = options = options.with_overrides(**options.fast_settings(device)) if options.fast else options
        self.restorer: Restorer = load_restorer(options, device=device)

    @classmethod
    def from_file(cls, path: str | os.PathLike, overrides: Iterable[tuple[str, Any]] = ()) -> "ImageRestorer":
        """From a test.py options file (its test sets, metrics and sweep are ignored), with
        `(key.path, value)` overrides."""
        return cls(load_with(parse_restorer_options, path, overrides))

    @classmethod
    def create(cls, *, network_G: Mapping[str, Any], path: Mapping[str, Any] | None = None,
               sde: Mapping[str, Any] | None = None, sampler: Mapping[str, Any] | None = None,
               **settings: Any) -> "ImageRestorer":
        """From option blocks: `network_G`, `path` (checkpoints), `sde` (with `algorithm`, the default
        sampler), `sampler`, and any key of `RestorerOptions` (`device`, `precision`, `seed`,
        `batch_size`, `tile`, ...)."""
        raw = {"network_G": network_G, "path": path or {}, "sde": sde or {}, "sampler": sampler or {}, **settings}
        return cls(parse_restorer_options(raw))

    def batch_size(self, height: int, width: int) -> int:
        """Images per batch at this size: `batch_size`, or with `auto` as test.py sizes it (from
        free GPU memory; 1 on the CPU)."""
        if self.options.batch_size != "auto":
            return int(self.options.batch_size)
        return self.restorer.auto_batch_size(height, width)

    def __call__(self, images: Any, *, sampler: str | None = None, nfe: int | None = None,
                 seeds: Sequence[int] | None = None, **sampler_keys: Any) -> Any:
        """Restore `images` with `sampler` (default `sde.algorithm`) at `nfe` (default
        `sampler.num_sample_steps`), any `sampler:` keys overriding the options' block. Image i is
        seeded with `seeds[i]` (default: the options' seed + i)."""
        name = self.options.sde.algorithm if sampler is None else sampler
        steps = self.options.sampler.num_sample_steps if nfe is None else nfe
        run = SweepRun.from_dict({"sampler": name, "nfe": steps, "set": sampler_keys}, "restore")
        return self._restore(images, run.points()[0], seeds)

    def sweep(self, images: Any, runs: Sequence[Mapping[str, Any]],
              seeds: Sequence[int] | None = None) -> dict[tuple[str, int], Any]:
        """Restore `images` at every point of `runs` (the `sweep.runs` form: sampler, nfe or a list,
        label, set); {(label or sampler, nfe): restored}."""
        points = [p for i, r in enumerate(runs) for p in SweepRun.from_dict(r, f"runs[{i}]").points()]
        return {(p.name, p.nfe): self._restore(images, p, seeds) for p in points}

    def _restore(self, images: Any, point: SweepPoint, seeds: Sequence[int] | None) -> Any:
        sampler = build_sampler_for(self.options, point, self.restorer.sde)
        tensors, back = _as_tensors(images)
        seeds = [self.options.seed + i for i in range(len(tensors))] if seeds is None else [int(s) for s in seeds]
        if len(seeds) != len(tensors):
            raise ValueError(f"seeds: {len(seeds)} given for {len(tensors)} image(s)")
        out: list[Tensor | None] = [None] * len(tensors)
        sizes = [tuple(t.shape[-2:]) for t in tensors]
        with torch.no_grad():
            for chunk in group_by_size(sizes, self.batch_size(*max(sizes, key=lambda s: s[0] * s[1]))):
                lq = torch.stack([tensors[i] for i in chunk]).to(self.restorer.device)
                result = self.restorer.restore(lq, [seeds[i] for i in chunk], sampler)
                bad = result.failures()
                if bad:
                    raise NonFiniteResult("; ".join(f"image {chunk[k]}: {why}" for k, why in bad.items()))
                for k, i in enumerate(chunk):
                    out[i] = result.x[k].cpu()
        return back(out)


def _one_as_tensor(image: Any) -> tuple[Tensor, bool, bool]:
    """[3, H, W] float32 in [0, 1], whether it came as numpy, and whether as uint8."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a numpy image [H, W, 3], got shape {image.shape}")
        as_u8 = image.dtype == np.uint8
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        return (t / 255.0 if as_u8 else t), True, as_u8
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a tensor image [3, H, W], got shape {tuple(image.shape)}")
        as_u8 = image.dtype == torch.uint8
        return (image.float() / 255.0 if as_u8 else image.float()), False, as_u8
    raise TypeError(f"expected numpy arrays or tensors, got {type(image).__name__}")


def _as_tensors(images: Any):
    """The images as [3, H, W] tensors, and a function that gives results back in the input's form."""
    single = isinstance(images, (np.ndarray, Tensor)) and images.ndim == 3
    batched = isinstance(images, (np.ndarray, Tensor)) and images.ndim == 4
    items = [images] if single else list(images)
    if not items:
        raise ValueError("no images given")
    converted = [_one_as_tensor(x) for x in items]
    tensors = [t for t, _, _ in converted]
    as_numpy, as_u8 = converted[0][1], converted[0][2]

    def back(out: list[Tensor]) -> Any:
        results = [quantize_to_uint8(x[None])[0] if as_u8 else x.clamp(0, 1) for x in out]
        if as_numpy:
            results = [r.permute(1, 2, 0).numpy() for r in results]
        if single:
            return results[0]
        if batched:
            return np.stack(results) if as_numpy else torch.stack(results)
        return results

    return tensors, back
