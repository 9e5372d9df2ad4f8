"""Scoring restored images against GT as the reference does: PSNR / SSIM (RGB and Y) on the
8-bit images, LPIPS on the float output; all batched on the run's device."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from uir.metrics import LpipsMetric, LpipsUnavailable, batch_image_metrics, unavailable_reason

logger = logging.getLogger(__name__)


def load_lpips(device: torch.device) -> LpipsMetric | None:
    """LPIPS (AlexNet) on `device`, or None (logged once) when its weights are not available."""
    try:
        metric = LpipsMetric.create(device)
    except LpipsUnavailable as exc:
        logger.warning("%s -- the LPIPS column stays empty", exc)
        return None
    if metric is None:
        logger.warning("%s -- the LPIPS column stays empty", unavailable_reason())
    return metric


@dataclass(frozen=True)
class Scorer:
    """`scorer(out, out_u8, gt, gt_u8) -> {metric: [value per image]}`."""

    crop: int
    lpips: LpipsMetric | None = None

    def __call__(self, out: Tensor, out_u8: Tensor, gt: Tensor, gt_u8: Tensor) -> dict[str, list[float]]:
        metrics = batch_image_metrics(out_u8, gt_u8, self.crop)
        if self.lpips is not None:
            metrics["lpips"] = self.lpips(out, gt)
        return {name: values.tolist() for name, values in metrics.items()}
