"""uir.metrics: PSNR / SSIM (RGB and Y) as the reference computes them, and LPIPS.

- `reference`: numpy/OpenCV, one uint8 RGB ``[H, W, 3]`` pair at a time; the definition.
- `torch_metrics`: the same numbers for ``[B, 3, H, W]`` batches on any device.
- `lpips_metric`: LPIPS (AlexNet) from locally cached weights only.
"""
from .lpips_metric import (
    ALEXNET_WEIGHTS_FILE,
    LpipsMetric,
    LpipsUnavailable,
    alexnet_weights_path,
    unavailable_reason,
)
from .reference import (
    METRIC_NAMES,
    crop_border,
    image_metrics,
    psnr,
    psnr_y,
    rgb_to_y,
    ssim,
    ssim_y,
    to_uint8,
    validate_crop,
)
from .torch_metrics import (
    batch_image_metrics,
    batch_psnr,
    batch_rgb_to_y,
    batch_ssim,
    gaussian_kernel_1d,
    quantize_to_uint8,
)

__all__ = [
    "ALEXNET_WEIGHTS_FILE",
    "METRIC_NAMES",
    "LpipsMetric",
    "LpipsUnavailable",
    "alexnet_weights_path",
    "batch_image_metrics",
    "batch_psnr",
    "batch_rgb_to_y",
    "batch_ssim",
    "crop_border",
    "gaussian_kernel_1d",
    "image_metrics",
    "psnr",
    "psnr_y",
    "quantize_to_uint8",
    "rgb_to_y",
    "ssim",
    "ssim_y",
    "to_uint8",
    "unavailable_reason",
    "validate_crop",
]
