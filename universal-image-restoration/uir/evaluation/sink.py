"""Where a run's results go: `ResultSink.record(task, point, indices, restored)` queues each
restored image's PNG and writes its per-image CSV row and log line once the PNG is on disk.
The sink owns the PNG writer and the per-image log of the run folder."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from uir.evaluation.resume import PerImageLog
from uir.evaluation.tables import INPUT, ImageRow, Layout
from uir.evaluation.tasks import TaskData
from uir.evaluation.writer import ImageWriter
from uir.options.sweep import PointKey, SweepPoint

logger = logging.getLogger(__name__)
# Per-image lines go to the run's log file only (the console shows the progress bar).
FILE_LOGGER = "uir.evaluation.file"
file_logger = logging.getLogger(FILE_LOGGER)
file_logger.propagate = False


@dataclass
class Restored:
    """One sweep point's outputs for some images of a batch."""

    images: np.ndarray  # uint8 [n, H, W, 3], RGB
    metrics: dict[str, list[float]]  # per image; empty without GT / metrics
    seconds: float  # sampling time per image
    model_calls: int
    seeds: list[int]
    errors: dict[int, str]  # position in `images` -> why that image is not a result (non-finite)


class ResultSink:
    """Use as a context manager: leaving it waits for every queued PNG and closes the CSV."""

    def __init__(self, run_dir: Path, layout: Layout, settings: dict[str, dict[str, Any]], *, resume: bool,
                 suffix: str | None, save_images: bool, rank: int = 0,
                 on_first_result: Callable[[], None] | None = None):
        self.run_dir = run_dir
        self.settings = settings  # settings columns of each point, by folder
        self.on_first_result = on_first_result
        self.suffix = suffix or ""
        self.save_images = save_images
        self.per_image = PerImageLog(run_dir, layout.per_image, resume=resume, rank=rank)
        self.writer = ImageWriter()
        self.processed = 0
        self.failures: list[str] = []  # one line per image that produced no result
        self._lock = threading.Lock()

    def __enter__(self) -> "ResultSink":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.writer.__exit__(*exc)
        finally:
            self.per_image.close()

    def _done(self, row: ImageRow) -> None:
        self.per_image.append(row.cells())
        with self._lock:  # PNG writer threads call this: the first of them only runs the callback
            first, self.on_first_result = self.on_first_result, None
        if first is not None:
            first()

    def record_input(self, task: TaskData, indices: list[int], metrics: dict[str, list[float]]) -> None:
        """The `input` rows: the metrics of LQ images themselves against GT (no PNG)."""
        for j, index in enumerate(indices):
            self.per_image.append(ImageRow(task.name, INPUT, INPUT, 0, task.pairs[index].name,
                                           metrics={metric: values[j] for metric, values in metrics.items()}).cells())

    def load(self) -> None:
        """Read what earlier sessions did (ranks > 0, once rank 0 has written it)."""
        self.per_image.load()

    def collect_ranks(self, world_size: int) -> None:
        """Rank 0, after the sink is closed: the other ranks' per-image rows, into the run's per-image CSV."""
        self.per_image.collect_ranks(world_size)

    def record_error(self, task: TaskData, point: SweepPoint, index: int, error: str) -> None:
        """An image that gave no result for another reason than its values (out of GPU memory)."""
        self._failed(ImageRow(task.name, point.sampler, point.name, point.nfe, task.pairs[index].name,
                              settings=self.settings[point.folder], error=error), error)

    def _failed(self, row: ImageRow, line: str) -> None:
        line = f"{row.task}/{row.image} {row.label} nfe {row.nfe}: {line}"
        logger.error(line)
        with self._lock:
            self.failures.append(line)
        self.per_image.append(row.cells())

    def done(self) -> set[tuple[PointKey, str]]:
        """(point, image) of every restoration on record (earlier sessions' included)."""
        return self.per_image.done()

    def rows(self) -> list[dict[str, Any]]:
        return self.per_image.snapshot()

    def wait_idle(self) -> None:
        """No PNG write in flight (e.g. before data loader workers fork)."""
        self.writer.wait_idle()

    def record(self, task: TaskData, point: SweepPoint, indices: list[int], restored: Restored) -> None:
        """Queue the PNGs; each image's per-image CSV row is written once its PNG is on disk. An
        image with an error gets a row that says so, and no PNG and no metric."""
        for j, index in enumerate(indices):
            pair = task.pairs[index]
            output = Path(task.name) / point.folder / f"{pair.name}{self.suffix}.png"
            row = ImageRow(task.name, point.sampler, point.name, point.nfe, pair.name,
                           settings=self.settings[point.folder], seconds=restored.seconds,
                           model_calls=restored.model_calls, seed=restored.seeds[j], batch_size=len(indices))
            error = restored.errors.get(j)
            if error is not None:
                self._failed(replace(row, error=error), f"{error}: no PNG, no metric")
                continue
            row = replace(row, output=output.as_posix() if self.save_images else "",
                          metrics={metric: values[j] for metric, values in restored.metrics.items()})
            file_logger.info("%s %s: %s", task.name, point.folder, " ".join(
                [pair.name] + [f"{m}={v:.6f}" for m, v in row.metrics.items()] + [f"sec={restored.seconds:.4f}"]))
            if self.save_images:
                self.writer.submit(self.run_dir / output, restored.images[j], then=lambda row=row: self._done(row))
            else:
                self._done(row)
        with self._lock:
            self.processed += len(indices)
