"""uir.metrics: PSNR / SSIM (RGB and Y) as the reference computes them, and LPIPS.

- `reference`: numpy/OpenCV, one uint8 RGB ``[H, W, 3]`` pair at a time; the definition.
- `torch_metrics`: the same numbers for ``[B, 3, H, W]`` batches on any device.
- `lpips_metric`: LPIPS (AlexNet); its weights from a named file, the torch hub cache or a download.
- `fid`: FID as pytorch-fid computes it (import `uir.metrics.fid` itself: it loads pytorch-fid).
- `weights`: the metrics' downloadable weight files.
"""
from .lpips_metric import (
    ALEXNET_WEIGHTS_FILE,
    LpipsMetric,
    LpipsUnavailable,
    LpipsWeightsMissing,
    alexnet_weights_path,
    lpips_input,
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
    "LpipsWeightsMissing",
    "alexnet_weights_path",
    "batch_image_metrics",
    "batch_psnr",
    "batch_rgb_to_y",
    "batch_ssim",
    "crop_border",
    "gaussian_kernel_1d",
    "image_metrics",
    "lpips_input",
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
