"""uir.metrics: PSNR / SSIM (RGB and Y) as the reference computes them, LPIPS and FID, and the
registry of metrics (`METRICS`) that the tables, the report and the scorer read.

- `reference`: numpy/OpenCV, one uint8 RGB ``[H, W, 3]`` pair at a time; the definition.
- `torch_metrics`: the same numbers for ``[B, 3, H, W]`` batches on any device.
- `lpips_metric`: LPIPS (AlexNet); its weights from a named file, the torch hub cache or a download.
- `fid`: FID as pytorch-fid computes it (import `uir.metrics.fid` itself: it loads pytorch-fid).
- `weights`: the metrics' downloadable weight files.
- `registry`: `METRICS`, `ImageMetric`, `SetMetric`, `ScoreBatch`; the built-ins register in the
  order psnr, ssim, psnr_y, ssim_y (`psnr_ssim`), lpips, fid (`fid_metric`).
"""
from . import psnr_ssim  # noqa: F401  (registers psnr, ssim, psnr_y, ssim_y first)
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
from .registry import (
    METRICS,
    ImageMetric,
    Metric,
    MetricUnavailable,
    ScoreBatch,
    SetMetric,
    SetScore,
    count_column,
    default_metrics,
    image_metric_names,
    set_metric_names,
)
from .torch_metrics import (
    batch_image_metrics,
    batch_psnr,
    batch_rgb_to_y,
    batch_ssim,
    gaussian_kernel_1d,
    quantize_to_uint8,
)

from .lpips_metric import LPIPS  # noqa: E402  (registers lpips)
from .fid_metric import FID  # noqa: E402  (registers fid)

__all__ = [
    "FID",
    "LPIPS",
    "METRICS",
    "ImageMetric",
    "Metric",
    "MetricUnavailable",
    "ScoreBatch",
    "SetMetric",
    "SetScore",
    "count_column",
    "default_metrics",
    "image_metric_names",
    "set_metric_names",
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
