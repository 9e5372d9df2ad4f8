"""PSNR / SSIM on 8-bit images, exactly as the reference test script computes them.

numpy + OpenCV, one image at a time. This module is the definition; `torch_metrics`
is the batched GPU version and is tested against it and the goldens.

The reference pipeline, per image:

1. ``tensor2img``: clamp the [0, 1] float image, multiply by 255 in float32, round
   (half to even), cast to uint8, CHW -> HWC. The reference also reverses the channels
   (RGB -> BGR) there. Here images stay RGB; PSNR and SSIM average over channels, so the
   order only matters for the Y channel, and `rgb_to_y` weights R, G, B accordingly.
2. PSNR / SSIM: ``x / 255.0``, crop ``crop_border`` pixels from every side (0: no crop),
   multiply by 255 again, then compare in float64. RGB SSIM is the mean of the
   per-channel SSIM maps.
3. Y channel (ITU-R BT.601, studio range [16, 235]) of the *uncropped* image, scaled to
   [16/255, 235/255]; then crop and multiply by 255 before PSNR / SSIM.

The reference picks ``crop_border`` as ``opt["crop_border"]`` when that is truthy and
falls back to ``degradation.scale`` (4 in every shipped options file) otherwise, so a
YAML ``crop_border: 0`` still crops 4. That choice belongs to the caller; every function
here takes the crop it is given.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

# SSIM constants (Wang et al. 2004, MATLAB ssim_index): dynamic range L = 255.
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2
SSIM_WINDOW_SIZE = 11
SSIM_WINDOW_SIGMA = 1.5

# BT.601 luma on 0..255 values: Y = (w_B B + w_G G + w_R R) / 255 + 16.
# Kept in the reference's BGR order so the dot product sums in the same order.
Y_WEIGHTS_BGR = (24.966, 128.553, 65.481)
Y_OFFSET = 16.0

METRIC_NAMES = ("psnr", "ssim", "psnr_y", "ssim_y")


def to_uint8(img01: torch.Tensor | np.ndarray) -> np.ndarray:
    """The reference's ``tensor2img`` for one image, keeping RGB order.

    ``img01``: a channel-first float image in [0, 1] (``[C, H, W]``, ``[1, C, H, W]`` or
    ``[H, W]``; unit dimensions are squeezed like the reference does), torch or numpy.
    Values are clamped to [0, 1], multiplied by 255 in float32 and rounded half to even.
    Returns uint8 ``[H, W, C]`` (or ``[H, W]``), channels in the input's order.
    The input is never modified.
    """
    t = torch.as_tensor(img01).detach().squeeze().float().cpu().clamp(0.0, 1.0)
    if t.dim() == 3:
        arr = t.numpy().transpose(1, 2, 0)
    elif t.dim() == 2:
        arr = t.numpy()
    else:
        raise ValueError(
            f"to_uint8: expected one image [C, H, W], [1, C, H, W] or [H, W], got shape "
            f"{tuple(torch.as_tensor(img01).shape)}; quantize batches with "
            f"uir.metrics.torch_metrics.quantize_to_uint8"
        )
    return (arr * np.float32(255.0)).round().astype(np.uint8)


def validate_crop(height: int, width: int, crop_border: int) -> None:
    """Raise ValueError unless cropping leaves at least an 11x11 image (the SSIM window)."""
    is_int = isinstance(crop_border, (int, np.integer)) and not isinstance(crop_border, bool)
    if not is_int or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    h, w = height - 2 * crop_border, width - 2 * crop_border
    if h < SSIM_WINDOW_SIZE or w < SSIM_WINDOW_SIZE:
        raise ValueError(
            f"image of {height}x{width} with crop_border={crop_border} leaves {h}x{w} pixels; "
            f"SSIM needs at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE}"
        )


def crop_border(img: np.ndarray, n: int) -> np.ndarray:
    """Drop ``n`` pixels from every side of an ``[H, W, ...]`` image (a view; ``n=0``: as is)."""
    validate_crop(img.shape[0], img.shape[1], n)
    if n == 0:
        return img
    return img[n:-n, n:-n]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y of YCbCr (BT.601, studio range) as the reference computes it, scaled by 1/255.

    ``img``: RGB ``[H, W, 3]``, uint8 (0..255) or float in [0, 1].
    Returns float64 ``[H, W]`` in [16/255, 235/255] (not rounded).
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y: expected an RGB image [H, W, 3], got shape {img.shape}")
    x01 = img / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    bgr255 = np.ascontiguousarray(x01[..., ::-1]) * 255.0
    return (np.dot(bgr255, Y_WEIGHTS_BGR) / 255.0 + Y_OFFSET) / 255.0


def _psnr_255(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two float arrays on the 0..255 scale; inf when they are equal."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return float("inf")
    return 20 * math.log10(255.0 / math.sqrt(mse))


def _gaussian_window() -> np.ndarray:
    kernel = cv2.getGaussianKernel(SSIM_WINDOW_SIZE, SSIM_WINDOW_SIGMA)
    return np.outer(kernel, kernel.transpose())


def _ssim_255(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM map (valid region) of two 0..255 arrays, ``[H, W]`` or ``[H, W, C]``.

    OpenCV filters every channel separately and the maps have equal sizes, so the mean
    over ``[H, W, C]`` is the mean of the per-channel SSIMs, as in the reference.
    """
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    window = _gaussian_window()
    r = SSIM_WINDOW_SIZE // 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window)[r:-r, r:-r]

    mu_a, mu_b = blur(a), blur(b)
    mu_aa, mu_bb, mu_ab = mu_a**2, mu_b**2, mu_a * mu_b
    var_a = blur(a**2) - mu_aa
    var_b = blur(b**2) - mu_bb
    cov_ab = blur(a * b) - mu_ab
    ssim_map = ((2 * mu_ab + SSIM_C1) * (2 * cov_ab + SSIM_C2)) / (
        (mu_aa + mu_bb + SSIM_C1) * (var_a + var_b + SSIM_C2)
    )
    return float(ssim_map.mean())


def _check_pair(out: np.ndarray, gt: np.ndarray, need_rgb: bool) -> None:
    for name, img in (("out", out), ("gt", gt)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            kind = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
            raise TypeError(
                f"{name}: expected a uint8 numpy image [H, W, 3] (RGB), got {kind}; "
                f"convert [0, 1] images with uir.metrics.to_uint8"
            )
        ok = img.ndim == 3 and img.shape[2] == 3 if need_rgb else img.ndim in (2, 3)
        if not ok:
            want = "[H, W, 3]" if need_rgb else "[H, W] or [H, W, C]"
            raise ValueError(f"{name}: expected an image {want}, got shape {img.shape}")
    if out.shape != gt.shape:
        raise ValueError(
            f"out and gt must have the same shape, got out {out.shape} and gt {gt.shape}"
        )


def _cropped_255(img01: np.ndarray, crop: int) -> np.ndarray:
    return crop_border(img01, crop) * 255


def psnr(out: np.ndarray, gt: np.ndarray, crop: int = 4) -> float:
    """PSNR (dB) of two uint8 images ``[H, W, 3]`` or ``[H, W]``; inf when equal."""
    _check_pair(out, gt, need_rgb=False)
    return _psnr_255(_cropped_255(out / 255.0, crop), _cropped_255(gt / 255.0, crop))


def ssim(out: np.ndarray, gt: np.ndarray, crop: int = 4) -> float:
    """SSIM (11x11 Gaussian, sigma 1.5, valid region; mean over channels) of uint8 images."""
    _check_pair(out, gt, need_rgb=False)
    return _ssim_255(_cropped_255(out / 255.0, crop), _cropped_255(gt / 255.0, crop))


def psnr_y(out: np.ndarray, gt: np.ndarray, crop: int = 4) -> float:
    """PSNR (dB) on the BT.601 Y channel of two uint8 RGB images ``[H, W, 3]``."""
    _check_pair(out, gt, need_rgb=True)
    return _psnr_255(_cropped_255(rgb_to_y(out), crop), _cropped_255(rgb_to_y(gt), crop))


def ssim_y(out: np.ndarray, gt: np.ndarray, crop: int = 4) -> float:
    """SSIM on the BT.601 Y channel of two uint8 RGB images ``[H, W, 3]``."""
    _check_pair(out, gt, need_rgb=True)
    return _ssim_255(_cropped_255(rgb_to_y(out), crop), _cropped_255(rgb_to_y(gt), crop))


def image_metrics(out: np.ndarray, gt: np.ndarray, crop_border: int) -> dict[str, float]:
    """``{psnr, ssim, psnr_y, ssim_y}`` of one uint8 RGB ``[H, W, 3]`` pair, as the reference."""
    _check_pair(out, gt, need_rgb=True)
    out_255, gt_255 = _cropped_255(out / 255.0, crop_border), _cropped_255(gt / 255.0, crop_border)
    out_y, gt_y = _cropped_255(rgb_to_y(out), crop_border), _cropped_255(rgb_to_y(gt), crop_border)
    return {
        "psnr": _psnr_255(out_255, gt_255),
        "ssim": _ssim_255(out_255, gt_255),
        "psnr_y": _psnr_255(out_y, gt_y),
        "ssim_y": _ssim_255(out_y, gt_y),
    }
