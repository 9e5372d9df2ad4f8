"""Trajectories: every intermediate state of chosen images, for every sweep point (the
`trajectory:` block), through the samplers' per-step callback; no sampler knows about files.

For each chosen image of a batch, `TrajectoryRecorder` (the callback of one `Restorer.restore`
call) appends each step's state, and the network's output at the step, to raw files beside
the final one as the steps come (memory holds one step at a time, whatever the image size and
the NFE); `finish` turns them into

    <run>/trajectories/<task>/<label>_nfe<N>/<image>.pt

written to a temporary name and renamed, so a file is complete or absent. It holds (torch.load):

    states       float32 [steps + 1, C, H, W]: x_T first, then the state after each step; the
                 last is the sampler's result before quantization (the PNG is its 8-bit form)
    timesteps    the time of each state (start to end: the grid's first point, then each step's)
    lambdas      lambda = log(alpha / sigma_bar) at each of those times
    grid         the sampler's own time grid
    predictions  float32 [n, C, H, W]: the network's output at the start of each step that
                 evaluated it, in the solver's parameterization (`parameterization`); with
                 `prediction_steps` (their 1-based step numbers), `prediction_times`,
                 `prediction_lambdas`; `denoised`: the same outputs as x_0 predictions
                 (absent with `predictions: false`)
    task, image, label, sampler, nfe, seed, steps, model_calls, settings, lq_path, gt_path

How many states: one per step plus x_T. MR Sampler at NFE N takes N steps (N + 1 states;
`denoise_last` makes the last step the network's x_0); posterior and Euler take N; Heun takes
ceil(N / 2) (two evaluations per step); with UniC a step's state is the predictor's.
An image whose result is not finite gets no trajectory, as it gets no PNG.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from uir.common.errors import OptionsError
from uir.evaluation.tasks import TaskData
from uir.options.sweep import SweepPoint
from uir.options.trajectory import TrajectoryOptions
from uir.samplers.base import Sampler, Step
from uir.sde.irsde import IRSDE

logger = logging.getLogger(__name__)

TRAJECTORY_DIR = "trajectories"
FORMAT = "uir-trajectory-1"
PARTS = ("states", "predictions", "denoised")


def trajectory_path(run_dir: Path, task: str, point: SweepPoint, image: str) -> Path:
    return run_dir / TRAJECTORY_DIR / task / point.folder / f"{image}.pt"


def select_images(options: TrajectoryOptions, tasks: list[TaskData]) -> dict[str, frozenset[int]]:
    """Each task's chosen images (indices into its pairs). A name or position that matches no
    task's images is an error naming `trajectory.images` and what is there."""
    if options.wants_all():
        return {t.name: frozenset(range(len(t.pairs))) for t in tasks}
    chosen: dict[str, set[int]] = {t.name: set() for t in tasks}
    for item in options.images:
        found = False
        for task in tasks:
            if isinstance(item, int):
                hit = [item] if item < len(task.pairs) else []
            else:
                hit = [i for i, pair in enumerate(task.pairs) if pair.name == item]
            chosen[task.name].update(hit)
            found = found or bool(hit)
        if not found:
            if isinstance(item, int):
                sizes = ", ".join(f"{t.name}: {len(t.pairs)}" for t in tasks)
                raise OptionsError(f"trajectory.images: position {item} is beyond every task's images (counts, after "
                                   f"max_images: {sizes}); positions count from 0")
            listed = sorted({p.name for t in tasks for p in t.pairs})
            shown = ", ".join(listed[:12]) + (f", ... ({len(listed)} in all)" if len(listed) > 12 else "")
            raise OptionsError(f"trajectory.images: no task has an image named {item!r} (names are file names without "
                               f"extension, as in per_image.csv); the tasks' images: {shown}")
    return {name: frozenset(indices) for name, indices in chosen.items()}


class TrajectoryRecorder:
    """The per-step callback of one restore call (one sweep point, one batch): streams the chosen
    images' steps to raw part files, then `finish` writes each image's `.pt`."""

    def __init__(self, run_dir: Path, task: TaskData, point: SweepPoint, sampler: Sampler, sde: IRSDE,
                 images: dict[int, int], seeds: dict[int, int], predictions: bool):
        self.task, self.point, self.sampler, self.sde = task, point, sampler, sde
        self.rows = sorted(images)  # positions in the batch
        self.index = images  # position in the batch -> index in the task
        self.seeds = seeds
        self.keep_predictions = predictions
        self.paths = {k: trajectory_path(run_dir, task.name, point, task.pairs[images[k]].name) for k in self.rows}
        self.shape: tuple[int, ...] | None = None
        self.times: list[float] = []
        self.prediction_steps: list[int] = []
        self.prediction_times: list[float] = []
        self.files: dict[tuple[int, str], Any] = {}

    def _write(self, part: str, batch: Tensor) -> None:
        rows = torch.tensor(self.rows, device=batch.device)
        values = batch.index_select(0, rows).to("cpu", torch.float32).numpy()
        for k, value in zip(self.rows, values):
            file = self.files.get((k, part))
            if file is None:
                path = self._part(k, part)
                path.parent.mkdir(parents=True, exist_ok=True)
                file = self.files[(k, part)] = open(path, "wb")
            file.write(np.ascontiguousarray(value).tobytes())

    def _part(self, k: int, part: str) -> Path:
        path = self.paths[k]
        return path.with_name(f"{path.stem}.{part}.part")

    def __call__(self, step: Step) -> None:
        self.shape = tuple(step.x.shape[1:])
        self._write("states", step.x)
        self.times.append(float(step.t))
        if self.keep_predictions and step.prediction is not None:
            self._write("predictions", step.prediction)
            self._write("denoised", step.denoised)
            self.prediction_steps.append(step.i)
            self.prediction_times.append(float(step.evaluated_at))

    def _lambdas(self, times: list[float]) -> list[float]:
        return self.sde.at(self.sde.lambdas, times).tolist() if times else []

    def finish(self, errors: dict[int, str], model_calls: int) -> list[Path]:
        """Write each image's `.pt` (not for images in `errors`, whose results are not finite)."""
        self._close()
        written = []
        try:
            for k in self.rows:
                if k in errors or self.shape is None:
                    continue
                self._save(k, model_calls)
                written.append(self.paths[k])
        finally:
            self.discard()
        return written

    def _save(self, k: int, model_calls: int) -> None:
        index = self.index[k]
        pair = self.task.pairs[index]
        record: dict[str, Any] = {
            "format": FORMAT, "task": self.task.name, "image": pair.name, "label": self.point.name,
            "sampler": self.point.sampler, "nfe": self.point.nfe, "seed": self.seeds[k],
            "steps": len(self.times) - 1, "model_calls": model_calls, "settings": self.sampler.settings(),
            "parameterization": getattr(self.sampler, "parameterization", None),
            "timesteps": self.times, "lambdas": self._lambdas(self.times),
            "grid": [float(t) for t in self.sampler.timesteps()] if hasattr(self.sampler, "timesteps") else None,
            "lq_path": os.fspath(pair.lq), "gt_path": os.fspath(pair.gt) if pair.gt is not None else None,
            "states": self._read(k, "states", len(self.times)),
        }
        if self.keep_predictions:
            n = len(self.prediction_steps)
            record.update(prediction_steps=self.prediction_steps, prediction_times=self.prediction_times,
                          prediction_lambdas=self._lambdas(self.prediction_times),
                          predictions=self._read(k, "predictions", n), denoised=self._read(k, "denoised", n))
        path = self.paths[k]
        temporary = path.with_name(path.name + ".tmp")
        torch.save(record, temporary)
        os.replace(temporary, path)

    def _read(self, k: int, part: str, count: int) -> Tensor:
        """The part file as a [count, C, H, W] tensor backed by the file (not copied into memory)."""
        shape = (count, *self.shape)
        if count == 0:
            return torch.zeros(shape, dtype=torch.float32)
        return torch.from_numpy(np.memmap(self._part(k, part), dtype=np.float32, mode="c", shape=shape))

    def _close(self) -> None:
        for file in self.files.values():
            file.close()

    def discard(self) -> None:
        """Remove the part files (after `finish`, or when the attempt failed: out of memory)."""
        self._close()
        for k, part in list(self.files):
            self._part(k, part).unlink(missing_ok=True)
        self.files.clear()


__all__ = ["FORMAT", "TRAJECTORY_DIR", "TrajectoryRecorder", "select_images", "trajectory_path"]
