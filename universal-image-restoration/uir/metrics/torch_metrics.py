"""Batched PSNR / SSIM in torch, on any device, matching `uir.metrics.reference`.

Images are ``[B, 3, H, W]`` tensors holding 8-bit values (uint8, or a float/int dtype
with integers in [0, 255]); every image in a batch has the same size. All arithmetic is
float64, so GPU and CPU results agree with the reference to ~1e-12. The five Gaussian
blurs SSIM needs run together as two 1-D ``conv2d`` passes without padding (the 'valid'
region of the separable 11x11 window).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .reference import (
    METRIC_NAMES,
    SSIM_C1,
    SSIM_C2,
    SSIM_WINDOW_SIGMA,
    SSIM_WINDOW_SIZE,
    Y_OFFSET,
    Y_WEIGHTS_BGR,
    validate_crop,
)

__all__ = [
    "quantize_to_uint8",
    "gaussian_kernel_1d",
    "batch_rgb_to_y",
    "batch_psnr",
    "batch_ssim",
    "batch_image_metrics",
]


def quantize_to_uint8(images01: torch.Tensor) -> torch.Tensor:
    """The reference's ``tensor2img`` rounding, batched and on the input's device.

    Clamp to [0, 1], multiply by 255 in float32, round half to even, cast to uint8.
    Shape and channel order are kept (``[B, 3, H, W]`` in, ``[B, 3, H, W]`` out).
    """
    return (images01.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def gaussian_kernel_1d(
    size: int = SSIM_WINDOW_SIZE,
    sigma: float = SSIM_WINDOW_SIGMA,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Normalised 1-D Gaussian ``[size]`` (OpenCV ``getGaussianKernel``); the SSIM window
    is its outer product with itself."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(device=device, dtype=dtype)


def _gaussian_blur_valid(x: torch.Tensor) -> torch.Tensor:
    """Filter every channel of ``[B, C, H, W]`` with the SSIM window, 'valid' region.

    The window is separable, so it runs as a vertical then a horizontal 1-D convolution
    (channels folded into the batch): the same sums as the 11x11 window up to rounding
    (~1e-13 on 0..255^2 values), and several times faster.
    """
    b, c, h, w = x.shape
    g = gaussian_kernel_1d(dtype=x.dtype, device=x.device)
    y = x.reshape(b * c, 1, h, w)
    y = F.conv2d(y, g.view(1, 1, -1, 1))
    y = F.conv2d(y, g.view(1, 1, 1, -1))
    return y.reshape(b, c, y.shape[-2], y.shape[-1])


def _as_8bit_float64(name: str, images: torch.Tensor) -> torch.Tensor:
    """Validate a ``[B, 3, H, W]`` tensor of 8-bit values and return it as float64."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B, 3, H, W], got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"{name}: expected RGB images [B, 3, H, W], got shape {tuple(images.shape)}"
        )
    if images.is_complex() or images.dtype == torch.bool:
        raise TypeError(f"{name}: expected uint8 or real-valued images, got {images.dtype}")
    x = images.to(torch.float64)
    if images.dtype != torch.uint8:
        invalid = (x != x.round()) | (x < 0) | (x > 255) | ~torch.isfinite(x)
        if bool(invalid.any()):
            raise ValueError(
                f"{name}: expected 8-bit values (integers in [0, 255]), got {images.dtype} "
                f"values in [{x.min().item():g}, {x.max().item():g}] that are not; quantize "
                f"[0, 1] images with quantize_to_uint8 first"
            )
    return x


def _crop(x: torch.Tensor, n: int) -> torch.Tensor:
    return x if n == 0 else x[..., n:-n, n:-n]


def batch_rgb_to_y(images255: torch.Tensor) -> torch.Tensor:
    """BT.601 Y of ``[B, 3, H, W]`` RGB 0..255 values, as float64 ``[B, 1, H, W]`` in
    [16/255, 235/255] (same scale and operation order as `reference.rgb_to_y`)."""
    x255 = (images255.to(torch.float64) / 255.0) * 255.0
    w_b, w_g, w_r = Y_WEIGHTS_BGR
    r, g, b = x255[:, 0:1], x255[:, 1:2], x255[:, 2:3]
    return ((b * w_b + g * w_g + r * w_r) / 255.0 + Y_OFFSET) / 255.0


def batch_psnr(a255: torch.Tensor, b255: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of ``[B, C, H, W]`` 0..255 tensors; inf where equal. float64 ``[B]``."""
    diff = a255.to(torch.float64) - b255.to(torch.float64)
    mse = diff.pow(2).mean(dim=(1, 2, 3))
    psnr = 20 * torch.log10(255.0 / mse.sqrt())
    return torch.where(mse == 0, torch.full_like(mse, math.inf), psnr)


def batch_ssim(a255: torch.Tensor, b255: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of ``[B, C, H, W]`` 0..255 tensors: 11x11 Gaussian (sigma 1.5),
    valid region, mean over channels and pixels. float64 ``[B]``."""
    a = a255.to(torch.float64)
    b = b255.to(torch.float64)
    channels = a.shape[1]
    blurred = _gaussian_blur_valid(torch.cat([a, b, a * a, b * b, a * b], dim=1))
    mu_a, mu_b, e_aa, e_bb, e_ab = blurred.split(channels, dim=1)
    mu_aa, mu_bb, mu_ab = mu_a**2, mu_b**2, mu_a * mu_b
    var_a, var_b, cov_ab = e_aa - mu_aa, e_bb - mu_bb, e_ab - mu_ab
    ssim_map = ((2 * mu_ab + SSIM_C1) * (2 * cov_ab + SSIM_C2)) / (
        (mu_aa + mu_bb + SSIM_C1) * (var_a + var_b + SSIM_C2)
    )
    return ssim_map.mean(dim=(1, 2, 3))


def batch_image_metrics(
    out: torch.Tensor, gt: torch.Tensor, crop_border: int
) -> dict[str, torch.Tensor]:
    """``{psnr, ssim, psnr_y, ssim_y}``, each float64 ``[B]`` on the inputs' device.

    ``out``, ``gt``: ``[B, 3, H, W]`` RGB with 8-bit values, same shape and device.
    ``crop_border`` pixels are dropped from every side (0: none); Y is computed before
    cropping, as in the reference.
    """
    out64 = _as_8bit_float64("out", out)
    gt64 = _as_8bit_float64("gt", gt)
    if out64.shape != gt64.shape:
        raise ValueError(
            f"out and gt must have the same shape, got out {tuple(out.shape)} and gt "
            f"{tuple(gt.shape)}"
        )
    if out64.device != gt64.device:
        raise ValueError(f"out and gt must be on one device, got {out.device} and {gt.device}")
    validate_crop(out64.shape[-2], out64.shape[-1], crop_border)

    out255 = _crop(out64 / 255.0, crop_border) * 255
    gt255 = _crop(gt64 / 255.0, crop_border) * 255
    out_y = _crop(batch_rgb_to_y(out64), crop_border) * 255
    gt_y = _crop(batch_rgb_to_y(gt64), crop_border) * 255
    values = (
        batch_psnr(out255, gt255),
        batch_ssim(out255, gt255),
        batch_psnr(out_y, gt_y),
        batch_ssim(out_y, gt_y),
    )
    return dict(zip(METRIC_NAMES, values))
