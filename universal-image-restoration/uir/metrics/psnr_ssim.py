"""The reference's per-image metrics, registered: PSNR and SSIM on the 8-bit images (RGB and the
BT.601 Y channel), with `crop_border` pixels dropped at each side (`uir.metrics.reference`
defines them, `uir.metrics.torch_metrics` computes them batched on the device)."""
from __future__ import annotations

from torch import Tensor

from uir.metrics.registry import METRICS, ImageMetric, ScoreBatch


class ReferenceMetric(ImageMetric):
    """One of the four values of `batch_image_metrics`, computed once per batch for all four."""

    default = True
    higher_is_better = True

    def __call__(self, batch: ScoreBatch) -> Tensor:
        return batch.reference_metrics[self.name]


@METRICS.register("psnr")
class PSNR(ReferenceMetric):
    title = "PSNR"
    digits = 2


@METRICS.register("ssim")
class SSIM(ReferenceMetric):
    title = "SSIM"


@METRICS.register("psnr_y")
class PSNRY(ReferenceMetric):
    title = "PSNR-Y"
    digits = 2


@METRICS.register("ssim_y")
class SSIMY(ReferenceMetric):
    title = "SSIM-Y"
