"""The CLIP input transform of the reference pipeline, on batched tensors (CPU or GPU).

The reference (``data/util.py: clip_transform``) turns the RGB float LQ image into 8 bits by
truncation, ``(x * 255).astype(uint8)``, wraps it in a PIL image and applies torchvision's
``Resize(224, BICUBIC)`` (shorter side to 224, longer side ``int(224 * long / short)``),
``CenterCrop(224)`` (offsets rounded with Python's ``round``), ``ToTensor()`` and
``Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)``.

:func:`clip_preprocess` computes the same thing on batched tensors and reproduces Pillow's
resize exactly instead of approximating it with ``F.interpolate``. Pillow resamples 8-bit
images in two separable passes with an antialiased bicubic kernel (a = -0.5, support scaled
by the reduction factor) and fixed-point weights (22 fractional bits), rounding and clipping to
8 bits after each pass. Those integer sums are computed exactly here (float64 matrix products
of integers below 2**53), so the result equals the PIL path bit for bit; ``tests/test_daclip.py``
checks this on a real photo. (``F.interpolate(antialias=True)`` with float rounding per pass
differs from it in about 0.02 % of the values, by one 8-bit level.) The pass order is that of
Pillow 13: horizontal first unless the height loses more than twice as many pixels as the
width; Pillow < 13 always went horizontal first, which differs only for images more than
twice as tall as wide.

Values outside ``[0, 1]`` are clamped (the reference's uint8 cast would wrap them).
"""
from __future__ import annotations

import math

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import Tensor

__all__ = ["clip_preprocess", "resized_size", "center_crop_offsets"]

_PRECISION_BITS = 22  # Pillow's fixed-point precision for 8-bit resampling
_BICUBIC_A = -0.5
_BICUBIC_SUPPORT = 2.0


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(H, W)`` after torchvision's ``Resize(size)``: shorter side ``size``, longer side truncated."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def center_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """``(top, left)`` of torchvision's ``CenterCrop(size)`` (Python ``round``: halves to even)."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def _bicubic(x: Tensor) -> Tensor:
    """Pillow's bicubic convolution kernel (a = -0.5), float64."""
    x = x.abs()
    a = _BICUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def _pillow_taps(in_size: int, out_size: int) -> tuple[Tensor, Tensor]:
    """Source indices and fixed-point weights ``[out_size, taps]`` of one Pillow resampling pass.

    Computed on the CPU in float64, step by step as Pillow's ``precompute_coeffs`` and
    ``normalize_coeffs_8bpc`` do, so the weights do not depend on the device.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    center = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale
    xmin = (center - support + 0.5).to(torch.int64).clamp_(min=0)  # C casts truncate toward 0
    xmax = (center + support + 0.5).to(torch.int64).clamp_(max=in_size)
    tap = torch.arange(taps, dtype=torch.int64)
    index = xmin[:, None] + tap[None, :]
    valid = tap[None, :] < (xmax - xmin)[:, None]
    weight = _bicubic((index.to(torch.float64) - center[:, None] + 0.5) * (1.0 / filterscale))
    weight = torch.where(valid, weight, torch.zeros_like(weight))
    total = weight[:, 0]
    for column in weight[:, 1:].unbind(dim=1):  # left to right, as Pillow sums
        total = total + column
    weight = weight / total[:, None]
    fixed = weight * (1 << _PRECISION_BITS)
    fixed = torch.where(fixed < 0, fixed - 0.5, fixed + 0.5).to(torch.int64)
    return index.clamp_(max=in_size - 1), fixed


def _resample_last_dim(levels: Tensor, out_size: int) -> Tensor:
    """One Pillow pass along the last dimension of 8-bit levels (float64 holding integers).

    The fixed-point sums are integers below 2**53, so the float64 matrix product is exact
    whatever order it adds in; it is much faster than gathering taps in int64.
    """
    in_size = levels.shape[-1]
    index, fixed = _pillow_taps(in_size, out_size)
    matrix = torch.zeros(in_size, out_size, dtype=torch.float64)
    columns = torch.arange(out_size)[:, None].expand_as(index)
    matrix.index_put_((index, columns), fixed.to(torch.float64), accumulate=True)
    acc = levels @ matrix.to(levels.device) + float(1 << (_PRECISION_BITS - 1))
    return torch.floor(acc * 2.0 ** -_PRECISION_BITS).clamp_(0.0, 255.0)


def _pillow_bicubic_resize(levels: Tensor, height: int, width: int) -> Tensor:
    """``PIL.Image.resize((width, height), BICUBIC)`` of 8-bit levels ``[..., H, W]`` (float64)."""
    in_h, in_w = levels.shape[-2:]
    horizontal_first = not (in_h - height > 0 and in_h - height > (in_w - width) * 2)

    def horizontal(x: Tensor) -> Tensor:
        return _resample_last_dim(x, width) if x.shape[-1] != width else x

    def vertical(x: Tensor) -> Tensor:
        if x.shape[-2] == height:
            return x
        return _resample_last_dim(x.transpose(-1, -2), height).transpose(-1, -2)

    if horizontal_first:
        return vertical(horizontal(levels))
    return horizontal(vertical(levels))


def clip_preprocess(images: Tensor, size: int = 224) -> Tensor:
    """CLIP input ``[B, 3, size, size]`` (float32, normalised) from RGB images in ``[0, 1]``.

    ``images``: float tensor ``[B, 3, H, W]`` on any device; equals the reference's PIL path
    (see the module docstring).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"clip_preprocess expects RGB images [B, 3, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"clip_preprocess expects a float tensor in [0, 1], got {images.dtype}")
    height, width = images.shape[-2:]
    new_h, new_w = resized_size(height, width, size)
    top, left = center_crop_offsets(new_h, new_w, size)
    with torch.autocast(device_type=images.device.type, enabled=False):
        levels = torch.floor(images.float() * 255.0).clamp_(0.0, 255.0).to(torch.float64)
        if (new_h, new_w) != (height, width):
            levels = _pillow_bicubic_resize(levels, new_h, new_w)
        levels = levels[..., top : top + size, left : left + size]
        mean = torch.tensor(OPENAI_DATASET_MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(OPENAI_DATASET_STD, device=images.device).view(1, 3, 1, 1)
        return (levels.float() / 255.0 - mean) / std
