"""Scoring restored images with the run's metrics (`uir.metrics.METRICS`), batched on the run's
device: per-image metrics on each batch (PSNR / SSIM on the 8-bit images, LPIPS on the float
output clamped to [0, 1], as the reference), set metrics (FID) from each sweep point's 8-bit
outputs against the task's GT folder.

Set-metric features are taken from the 8-bit outputs while the run goes (they are the bytes of
the PNGs the run writes); a resumed run reads the PNGs of earlier sessions. The `input` row of
each task scores the LQ images themselves: per-image metrics from the loaded images, set metrics
from the LQ folder's files, as pytorch-fid would read them.
"""
from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from uir.common.errors import WeightsFileError
from uir.metrics.registry import METRICS, ImageMetric, MetricUnavailable, ScoreBatch, SetMetric, SetScore
from uir.metrics.torch_metrics import quantize_to_uint8

logger = logging.getLogger(__name__)


def load_metric(name: str, device: torch.device, weights_file: str | None = None) -> ImageMetric | SetMetric | None:
    """The metric `name` on `device`, or None (said once in the log) when its weights are not
    available; a weights file that is named or cached but unusable raises (WeightsFileError)."""
    metric_class = METRICS[name]
    try:
        metric = metric_class.load(device, weights_file)
    except WeightsFileError:
        raise
    except MetricUnavailable as exc:
        logger.warning("%s -- the %s column stays empty", exc, metric_class.title)
        return None
    if metric is None:
        logger.warning("%s -- the %s column stays empty", metric_class.unavailable(), metric_class.title)
    return metric


@dataclass(frozen=True)
class Scorer:
    """`scorer(out, gt) -> {metric: [value per image]}` for the per-image metrics, and the set
    metrics of the sweep points (`sets`)."""

    crop: int
    images: Mapping[str, ImageMetric] = field(default_factory=dict)
    sets: Mapping[str, SetMetric] = field(default_factory=dict)

    @classmethod
    def load(cls, names: Sequence[str], crop: int, device: torch.device,
             weights: Mapping[str, str | None] | None = None) -> "Scorer":
        """The metrics `names` (those whose weights are missing are left out, with a warning)."""
        weights = weights or {}
        loaded = {name: load_metric(name, device, weights.get(name)) for name in names}
        return cls(crop, {n: m for n, m in loaded.items() if isinstance(m, ImageMetric)},
                   {n: m for n, m in loaded.items() if isinstance(m, SetMetric)})

    def __call__(self, out: Tensor, gt: Tensor, out_u8: Tensor | None = None, gt_u8: Tensor | None = None
                 ) -> dict[str, list[float]]:
        """Per-image metrics of the float outputs `out` against the GT (both [B, 3, H, W])."""
        batch = ScoreBatch(out, quantize_to_uint8(out) if out_u8 is None else out_u8, gt,
                           quantize_to_uint8(gt) if gt_u8 is None else gt_u8, self.crop)
        return {name: metric(batch).tolist() for name, metric in self.images.items()}

    def add(self, point: Hashable, indices: Sequence[int], out_u8: Tensor) -> None:
        """A point's 8-bit outputs, for its set metrics."""
        for metric in self.sets.values():
            metric.add(point, indices, out_u8)

    def set_scores(self, point: Hashable, task: str) -> dict[str, SetScore]:
        return {name: metric.score(point, task) for name, metric in self.sets.items() if metric.has_reference(task)}
