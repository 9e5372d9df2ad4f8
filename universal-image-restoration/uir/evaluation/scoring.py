"""Scoring restored images as the reference does: PSNR / SSIM (RGB and Y) on the 8-bit images,
LPIPS on the float output clamped to [0, 1], and FID (pytorch-fid's Inception and distance) of
each sweep point's 8-bit outputs against the task's GT folder; all batched on the run's device.

FID features are taken from the 8-bit outputs while the run goes (they are the bytes of the
PNGs the run writes); a resumed run reads the PNGs of earlier sessions. The `input` row of each
task scores the LQ images themselves: PSNR/SSIM/LPIPS from the loaded images, FID from the LQ
folder's files, as pytorch-fid would read them.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from uir.common.errors import WeightsFileError
from uir.metrics import LpipsMetric, LpipsUnavailable, batch_image_metrics, unavailable_reason
from uir.metrics.fid import FidAccumulator, FidInception, FidScore, FidUnavailable, fid_unavailable_reason

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _load(what: str, create: Callable[[], T | None], unavailable: type[Exception], reason: Callable[[], str]) -> T | None:
    """A metric's network, or None (said once in the log) when its weights are not available; a
    weights file that is named or cached but unusable raises (WeightsFileError)."""
    try:
        loaded = create()
    except WeightsFileError:
        raise
    except unavailable as exc:
        logger.warning("%s -- the %s column stays empty", exc, what)
        return None
    if loaded is None:
        logger.warning("%s -- the %s column stays empty", reason(), what)
    return loaded


def load_lpips(device: torch.device, weights_file: str | None = None) -> LpipsMetric | None:
    """LPIPS (AlexNet) on `device`."""
    return _load("LPIPS", lambda: LpipsMetric.create(device, weights_file), LpipsUnavailable, unavailable_reason)


def load_fid(device: torch.device, weights_file: str | None = None) -> FidAccumulator | None:
    """FID's Inception on `device`, with an empty accumulator."""
    inception = _load("FID", lambda: FidInception.create(device, weights_file), FidUnavailable,
                      fid_unavailable_reason)
    return FidAccumulator(inception) if inception is not None else None


@dataclass(frozen=True)
class Scorer:
    """`scorer(out, out_u8, gt, gt_u8) -> {metric: [value per image]}`, and the FID features of
    the sweep points (`fid`, None without FID)."""

    crop: int
    lpips: LpipsMetric | None = None
    fid: FidAccumulator | None = None

    def __call__(self, out: Tensor, out_u8: Tensor, gt: Tensor, gt_u8: Tensor) -> dict[str, list[float]]:
        metrics = batch_image_metrics(out_u8, gt_u8, self.crop)
        if self.lpips is not None:
            metrics["lpips"] = self.lpips(out, gt)
        return {name: values.tolist() for name, values in metrics.items()}

    def fid_score(self, key: Hashable, task: str) -> FidScore | None:
        return self.fid.score(key, task) if self.fid is not None and task in self.fid.gt else None
