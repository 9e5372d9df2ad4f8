"""FID, registered: the reference's `pytorch_fid.calculate_fid_given_paths` of each sweep point's
restored images against the task's GT folder (`uir.metrics.fid`, which loads pytorch-fid: it is
imported when the metric is first loaded, not with the registry)."""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from uir.metrics.registry import METRICS, SetMetric, SetScore


@METRICS.register("fid")
class FID(SetMetric):
    title = "FID"
    higher_is_better = False
    digits = 2
    default = True
    switch = "fid"
    weights = "fid_weights"

    def __init__(self, accumulator: Any):
        self.accumulator = accumulator  # uir.metrics.fid.FidAccumulator

    @classmethod
    def load(cls, device: torch.device, weights_file: str | None = None) -> "FID | None":
        from uir.metrics.fid import FidAccumulator, FidInception

        inception = FidInception.create(device, weights_file)
        return cls(FidAccumulator(inception)) if inception is not None else None

    @classmethod
    def unavailable(cls) -> str:
        from uir.metrics.fid import fid_unavailable_reason

        return fid_unavailable_reason()

    def reference_folder(self, task: str, folder: str) -> None:
        self.accumulator.gt_from_folder(task, folder)

    def has_reference(self, task: str) -> bool:
        return task in self.accumulator.gt

    def add(self, point: Hashable, indices: Sequence[int], images_u8: Tensor) -> None:
        self.accumulator.add(point, indices, images_u8)

    def add_files(self, point: Hashable, indices: Sequence[int], files: Sequence[Any]) -> None:
        self.accumulator.add_files(point, indices, files)

    def state(self) -> Any:
        return self.accumulator.features

    def merge(self, state: Any) -> None:
        self.accumulator.merge(state)

    def score(self, point: Hashable, task: str) -> SetScore:
        result = self.accumulator.score(point, task)
        return SetScore(result.value, result.images, result.note)
