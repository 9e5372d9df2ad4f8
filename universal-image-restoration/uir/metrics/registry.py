"""The registry of metrics: every metric declared once, with what tables, the per-image CSV, the
report, the benchmark and the scorer need to know of it.

A metric is a class registered under its column name:

    from uir.metrics import METRICS, ImageMetric

    @METRICS.register("mae")
    class MAE(ImageMetric):
        title = "MAE"
        higher_is_better = False
        def __call__(self, batch):                 # batch: ScoreBatch, on the run's device
            return (batch.out.clamp(0, 1) - batch.gt).abs().mean(dim=(1, 2, 3))

and `metrics: [psnr, mae]` in an options file selects it. An `ImageMetric` scores each image
(a column of the per-image CSV; its table cell is the mean over a point's images); a `SetMetric`
scores a point's images as a set against the task's GT folder (FID), with a count column
`<name>_images`. `load(device, weights_file)` builds the metric on the run's device, or returns
None (the reason logged, the column left empty) when its weights cannot be had; it never scores
with random weights.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import Tensor

from uir.common.registry import Registry


class MetricUnavailable(RuntimeError):
    """A metric cannot be built here (its package or weights are missing or unusable)."""


@dataclass(frozen=True, eq=False)
class ScoreBatch:
    """What the metrics read of a batch, on one device: the sampler's float outputs `out`
    ([B, 3, H, W], any range), their 8-bit quantisation `out_u8` (the PNG's values), the GT in
    [0, 1] and as 8 bits, and the border to crop. Work shared by several metrics is cached."""

    out: Tensor
    out_u8: Tensor
    gt: Tensor
    gt_u8: Tensor
    crop: int

    @cached_property
    def reference_metrics(self) -> dict[str, Tensor]:
        """PSNR, SSIM, PSNR-Y and SSIM-Y as the reference computes them (`batch_image_metrics`)."""
        from uir.metrics.torch_metrics import batch_image_metrics

        return batch_image_metrics(self.out_u8, self.gt_u8, self.crop)


@dataclass(frozen=True)
class SetScore:
    """A set metric's value for one point (None when it cannot be computed), the number of images
    it used, and a note for the log (why it is empty, or a fallback the library took)."""

    value: float | None
    images: int | None
    note: str | None = None


class Metric:
    """What every metric declares. Subclass `ImageMetric` or `SetMetric`."""

    name: ClassVar[str]  # its column; set by the registry
    title: ClassVar[str]  # how tables and figures call it
    higher_is_better: ClassVar[bool]
    digits: ClassVar[int] = 4  # decimals in the report's tables
    per_image: ClassVar[bool] = True
    default: ClassVar[bool] = False  # part of `metrics: true` (the reference's set)
    switch: ClassVar[str | None] = None  # the boolean option that turns it off (e.g. `lpips`)
    weights: ClassVar[str | None] = None  # the option naming a local weights file (e.g. `lpips_weights`)

    @classmethod
    def load(cls, device: torch.device, weights_file: str | None = None) -> "Metric | None":
        """The metric on `device`; None (with `unavailable` saying why) when its weights are missing
        and cannot be downloaded; `MetricUnavailable` when they cannot be used."""
        return cls()

    @classmethod
    def unavailable(cls) -> str:
        return f"{cls.title} unavailable"


class ImageMetric(Metric):
    """One value per image: `metric(batch) -> Tensor [B]`."""

    def __call__(self, batch: ScoreBatch) -> Tensor:
        raise NotImplementedError


class SetMetric(Metric):
    """One value per sweep point, from all its images against the task's GT folder."""

    per_image = False

    def reference_folder(self, task: str, folder: str) -> None:
        """The task's GT statistics from every image of `folder` (once per task)."""
        raise NotImplementedError

    def has_reference(self, task: str) -> bool:
        raise NotImplementedError

    def add(self, point: Hashable, indices: Sequence[int], images_u8: Tensor) -> None:
        """The 8-bit outputs [B, 3, H, W] of `point`, image `indices[i]` in row i."""
        raise NotImplementedError

    def add_files(self, point: Hashable, indices: Sequence[int], files: Sequence[Any]) -> None:
        """Images of `point` already on disk (LQ files, PNGs of an earlier session)."""
        raise NotImplementedError

    def state(self) -> Any:
        """What this process gathered, for `merge` in another."""
        raise NotImplementedError

    def merge(self, state: Any) -> None:
        raise NotImplementedError

    def score(self, point: Hashable, task: str) -> SetScore:
        raise NotImplementedError


METRICS: Registry[type[Metric]] = Registry("metric", key="metrics")


def default_metrics() -> tuple[str, ...]:
    """`metrics: true`: the reference's set (every metric registered with `default = True`)."""
    return tuple(name for name, metric in METRICS.items() if metric.default)


def image_metric_names(names: Sequence[str] | None = None) -> tuple[str, ...]:
    """The per-image metrics among `names` (default: every registered one), in registry order."""
    chosen = METRICS.names() if names is None else names
    return tuple(n for n in METRICS.names() if n in chosen and METRICS[n].per_image)


def set_metric_names(names: Sequence[str] | None = None) -> tuple[str, ...]:
    chosen = METRICS.names() if names is None else names
    return tuple(n for n in METRICS.names() if n in chosen and not METRICS[n].per_image)


def count_column(name: str) -> str:
    """The column counting the images a set metric used (`fid_images`)."""
    return f"{name}_images"
