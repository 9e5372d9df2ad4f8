"""Restoring images from Python, with the network, DA-CLIP, IR-SDE and sampler that an options
file (or keyword blocks) describes; no folders, no run.

    from uir import ImageRestorer
    restorer = ImageRestorer.from_file("options/demo.yml")
    restored = restorer(lq)                              # lq: uint8 [H, W, 3] -> uint8 [H, W, 3]
    restored = restorer([a, b, c], sampler="posterior", nfe=100)   # any sizes, any number
    by_point = restorer.sweep(images, [{"label": "MRS-2", "sampler": "mrsampler", "nfe": [5, 10]}])

Images are numpy arrays ``[H, W, 3]`` or tensors ``[3, H, W]``, RGB, one at a time, as a batch
(``[B, ...]``) or as a list of mixed sizes and forms. Their dtype says their scale (`IMAGE_SCALES`):
uint8 is 0..255, uint16 0..65535, a float image must lie in [0, 1]; any other dtype (int32, bool,
...) or a float image outside [0, 1] is refused (`ImageInputError`) rather than guessed. Each
result has its input's form and dtype (uint8 quantised as the reference's ``tensor2img``, uint16
likewise at 16 bits, floats clamped to [0, 1]). Image i of a call draws its noise from a generator seeded with
``seed + i``, as image i of a task in test.py, so the same image at the same position gives the
bytes test.py writes. Equal sizes are restored together, ``batch_size`` at a time.
"""
from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from uir.common.checks import check_choice, check_int
from uir.common.errors import ImageInputError, OptionsError
from uir.data import group_by_size
from uir.evaluation.sweep import build_sampler_for, load_restorer
from uir.metrics import quantize_to_uint8
from uir.options import load_with, parse_restorer_options
from uir.options.restorer import MAX_SEED, RestorerOptions
from uir.options.sweep import SweepPoint, SweepRun
from uir.restoration import Restorer
from uir.samplers.registry import SAMPLERS

T = TypeVar("T")


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
        sampler = self.options.sde.algorithm if sampler is None else _argument(check_choice, "sampler", sampler, SAMPLERS)
        nfe = self.options.sampler.num_sample_steps if nfe is None else _argument(check_int, "nfe", _integer(nfe),
                                                                                    minimum=1)
        if "num_sample_steps" in sampler_keys:
            raise OptionsError("num_sample_steps: give the number of steps as nfe=")
        point = SweepPoint(sampler, nfe, None, tuple(sorted(sampler_keys.items())))
        return self._restore(images, point, seeds)

    def sweep(self, images: Any, runs: Sequence[Mapping[str, Any]],
              seeds: Sequence[int] | None = None) -> dict[tuple[str, int], Any]:
        """Restore `images` at every point of `runs` (the `sweep.runs` form: sampler, nfe or a list,
        label, set); {(label or sampler, nfe): restored}."""
        if isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, Iterable):
            hint = " (one point is a list of one: [{...}])" if isinstance(runs, Mapping) else ""
            raise OptionsError(f"runs: expected a list of {{sampler, nfe, label, set}} mappings, got a "
                               f"{type(runs).__name__}{hint}")
        runs = list(runs)
        for i, r in enumerate(runs):
            if not isinstance(r, Mapping):
                raise OptionsError(f"runs[{i}]: expected a mapping {{sampler, nfe, label, set}}, got {r!r}")
        points = [p for i, r in enumerate(runs) for p in _argument(SweepRun.from_dict, r, f"sweep.runs[{i}]").points()]
        return {(p.name, p.nfe): self._restore(images, p, seeds) for p in points}

    def _restore(self, images: Any, point: SweepPoint, seeds: Sequence[int] | None) -> Any:
        sampler = build_sampler_for(self.options, point, self.restorer.sde)
        tensors, back = _as_tensors(images)
        seeds = _seeds(seeds, self.options.seed, len(tensors))
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


def _seeds(seeds: Any, base: int, count: int) -> list[int]:
    """One seed per image: `seeds` checked (integers torch's generators take), or base + i."""
    if seeds is None:
        seeds = [base + i for i in range(count)]
    elif isinstance(seeds, (str, bytes, Mapping)) or not isinstance(seeds, Iterable):
        raise OptionsError(f"seeds: expected a list of integers, one per image, got {seeds!r}")
    seeds = list(seeds)
    if len(seeds) != count:
        raise OptionsError(f"seeds: {len(seeds)} given for {count} image(s)")
    return [_argument(check_int, f"seeds[{i}]", _integer(s), minimum=0, maximum=MAX_SEED) for i, s in enumerate(seeds)]


def _argument(check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`check(*args, **kwargs)`, its ValueError as an OptionsError (an argument of the API is an option)."""
    try:
        return check(*args, **kwargs)
    except ValueError as exc:
        raise OptionsError(str(exc)) from None


def _integer(value: Any) -> Any:
    """numpy and 0-d tensor integers as int; anything else as it is (for check_int to judge)."""
    if isinstance(value, (bool, np.bool_, float, np.floating)):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


# The image dtypes the API reads, and the number that maps each onto [0, 1] (None: a float
# dtype, whose values must already lie in [0, 1]). Anything else is ambiguous (is an int32 image
# 0..255 or 0..65535? a float image 0..1 or 0..255?) and refused rather than guessed.
IMAGE_SCALES: dict[str, float | None] = {
    "uint8": 255.0, "uint16": 65535.0, "float16": None, "bfloat16": None, "float32": None, "float64": None,
}
ACCEPTED_IMAGES = "uint8 (0..255), uint16 (0..65535), or float16/bfloat16/float32/float64 with values in [0, 1]"


@dataclass(frozen=True)
class ImageForm:
    """How an image came, so that its result goes back the same way: numpy [H, W, 3] or tensor
    [3, H, W], and its dtype."""

    numpy: bool
    dtype: Any  # a numpy or torch dtype


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _value_range(values: np.ndarray | Tensor) -> str:
    """" (values 0..300)", or "" where values say nothing, for a refusal's message."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "biuf":
            return ""
        values = torch.from_numpy(np.ascontiguousarray(values.astype(np.float64)))
    if values.is_complex() or values.numel() == 0:
        return ""
    flat = values.detach().reshape(-1).double()
    finite = flat[torch.isfinite(flat)]
    bad = f", {flat.numel() - finite.numel()} NaN/inf" if finite.numel() < flat.numel() else ""
    span = f"{finite.min().item():g}..{finite.max().item():g}" if finite.numel() else "none finite"
    return f" (values {span}{bad})"


def image_in_unit_range(image: np.ndarray | Tensor, where: str) -> Tensor:
    """The image as float32 in [0, 1] by `IMAGE_SCALES`: the API's one dtype policy. Raises
    ImageInputError naming what was received and what is accepted."""
    name = _dtype_name(image.dtype)
    if name not in IMAGE_SCALES:
        raise ImageInputError(f"{where}: got dtype {name}{_value_range(image)}; accepted: {ACCEPTED_IMAGES} "
                              f"(scale the image yourself, e.g. img.astype(np.float32) / 255 for 0..255 values)")
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image.astype(np.float32)))
    values = image.detach().to(torch.float32)
    scale = IMAGE_SCALES[name]
    if scale is not None:
        return values / scale
    if not bool(torch.isfinite(values).all()) or float(values.min()) < 0.0 or float(values.max()) > 1.0:
        raise ImageInputError(f"{where}: got a {name} image{_value_range(values)}; a float image must lie in [0, 1]; "
                              f"accepted: {ACCEPTED_IMAGES}")
    return values


def image_from_unit_range(x: Tensor, form: ImageForm) -> np.ndarray | Tensor:
    """A restored [3, H, W] image in `form`: integers quantised as the reference's `tensor2img`
    (uint8) or likewise at 16 bits, floats clamped to [0, 1]."""
    name = _dtype_name(form.dtype)
    scale = IMAGE_SCALES[name]
    if name == "uint8":
        out = quantize_to_uint8(x[None])[0]
    elif scale is not None:
        out = (x.float().clamp(0, 1) * scale).round().to(torch.int32).to(torch.uint16)
    else:
        out = x.clamp(0, 1)
    if form.numpy:
        out = out.permute(1, 2, 0).numpy()
        return out.astype(form.dtype, copy=False) if scale is None else out
    return out.to(form.dtype)


def _check_shape(shape: tuple[int, ...], form: ImageForm, where: str) -> None:
    layout = "[H, W, 3]" if form.numpy else "[3, H, W]"
    channels = None if len(shape) < 3 else shape[-1] if form.numpy else shape[-3]
    kind = "numpy image" if form.numpy else "tensor image"
    if len(shape) not in (3, 4) or channels != 3:
        hint = ""
        if len(shape) == 2:
            hint = " (a grayscale image? give it 3 channels, e.g. np.stack([img] * 3, axis=-1))"
        elif channels in (1, 4):
            hint = f" ({'grayscale' if channels == 1 else 'RGBA'}? give it 3 RGB channels)"
        raise ImageInputError(f"{where}: expected a {kind} {layout} (RGB) or a batch [B, ...] of them, got "
                              f"shape {shape}{hint}")
    height, width = (shape[-3], shape[-2]) if form.numpy else (shape[-2], shape[-1])
    if height == 0 or width == 0:
        raise ImageInputError(f"{where}: the image is empty (shape {shape})")


def _images(images: Any) -> tuple[list[tuple[Any, ImageForm, str]], bool, bool]:
    """(image, form, name for messages) of each image, and whether `images` was one image or a batch."""
    if isinstance(images, (np.ndarray, Tensor)):
        form = ImageForm(isinstance(images, np.ndarray), images.dtype)
        shape = tuple(images.shape)
        _check_shape(shape, form, "images" if len(shape) == 4 else "image")
        if len(shape) == 3:
            return [(images, form, "image")], True, False
        if shape[0] == 0:
            raise ImageInputError(f"images: the batch is empty (shape {shape})")
        return [(images[i], form, f"images[{i}]") for i in range(shape[0])], False, True
    if isinstance(images, (str, bytes, Mapping)) or not isinstance(images, Iterable):
        raise TypeError(f"expected a numpy array, a tensor, or a list of them, got {type(images).__name__}")
    items = list(images)
    if not items:
        raise ImageInputError("images: no images given (an empty list)")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, (np.ndarray, Tensor)):
            raise TypeError(f"images[{i}]: expected a numpy array or a tensor, got {type(item).__name__}")
        form = ImageForm(isinstance(item, np.ndarray), item.dtype)
        if item.ndim != 3:
            raise ImageInputError(f"images[{i}]: expected one image ({'[H, W, 3]' if form.numpy else '[3, H, W]'}) "
                                  f"per list item, got shape {tuple(item.shape)}")
        _check_shape(tuple(item.shape), form, f"images[{i}]")
        out.append((item, form, f"images[{i}]"))
    return out, False, False


def _as_tensors(images: Any):
    """The images as [3, H, W] float32 tensors in [0, 1], and a function that gives results back
    in each input's form (a batch as a batch)."""
    items, single, batched = _images(images)
    if batched:  # one dtype for the whole batch: check it once
        whole = image_in_unit_range(images, "images")
        tensors = [whole[i] for i in range(len(items))]
    else:
        tensors = [image_in_unit_range(image, where) for image, _, where in items]
    tensors = [t if not items[i][1].numpy else t.permute(2, 0, 1) for i, t in enumerate(tensors)]

    def back(out: list[Tensor]) -> Any:
        results = [image_from_unit_range(x, form) for x, (_, form, _) in zip(out, items)]
        if single:
            return results[0]
        if batched:
            return np.stack(results) if items[0][1].numpy else torch.stack(results)
        return results

    return tensors, back
