"""Out-of-memory back-off: a batch that runs out of GPU memory is halved and retried.

`OomBackoff.run(fn, indices)` calls ``fn(batch)`` on the image indices; when it raises CUDA's
out-of-memory error, the cached memory is freed and the batch is split in two halves that run in
turn, down to one image. An image that does not fit even alone is recorded in `failures` (its
name, size, and a `tile:` setting to try) and the others go on. Each sub-batch that finished is
returned, so nothing done is lost. After a split, later batches with the same `key` (e.g. the
image size) start at the size that was reached, instead of running out of memory again.

Each image keeps its own seeded generator (`seed + index`), so splitting a batch does not change
any image's result.
"""
from __future__ import annotations

import gc
import logging
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from uir.tiling import MIN_TILE_SIZE, TileSettings, tile_starts

logger = logging.getLogger(__name__)

R = TypeVar("R")
# Tiles a suggested `tile:` setting starts from, and the share of the image's pixels per call.
SUGGESTED_TILE = 256
SUGGESTED_SHARE = 4


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error: `torch.cuda.OutOfMemoryError`, or the RuntimeError
    "CUDA out of memory" that torch raised before that class existed."""
    oom_class = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_class is not None and isinstance(exc, oom_class):
        return True
    return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)


def free_device_memory() -> None:
    """Drop what the failed attempt left behind and hand cached CUDA blocks back."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _multiple_of_16(value: float) -> int:
    return max(MIN_TILE_SIZE, int(value) // 16 * 16)


def suggest_tile(height: int, width: int, current: TileSettings | None = None) -> TileSettings | None:
    """A `tile:` setting that needs less memory than `current` for an image of this size:
    fewer tiles per call first (same numbers), then smaller tiles. None when nothing is smaller."""
    if current is None:
        size = min(SUGGESTED_TILE, _multiple_of_16(max(height, width) / 2))
        return TileSettings(size, size // 8, max(1, height * width // (SUGGESTED_SHARE * size * size)))
    tiles = len(tile_starts(height, min(current.size, height), current.overlap)) * len(
        tile_starts(width, min(current.size, width), current.overlap))
    per_call = min(current.tiles_per_call, tiles)
    if per_call > 1:
        return TileSettings(current.size, current.overlap, per_call // 2)
    if current.size <= MIN_TILE_SIZE:
        return None
    size = _multiple_of_16(current.size / 2)
    return TileSettings(size, current.overlap * size // current.size, 1)


@dataclass(frozen=True)
class OomFailure:
    """An image that ran out of memory alone."""

    index: int
    name: str
    height: int
    width: int
    suggestion: TileSettings | None
    error: str  # the first line of the out-of-memory message

    @property
    def message(self) -> str:
        if self.suggestion is None:
            hint = "it does not fit even as one 16x16 tile per call; use a device with more memory"
        else:
            s = self.suggestion
            hint = f"restore it with tiles, e.g. tile: {{size: {s.size}, overlap: {s.overlap}, max_batch: {s.max_batch}}}"
        return f"{self.name} ({self.width}x{self.height}): out of GPU memory even alone; {hint}"


@dataclass
class BatchResult(Generic[R]):
    indices: list[int]
    result: R


class OomBackoff:
    """Runs batches of images, halving a batch that runs out of GPU memory (see module doc).

    `describe(index)` gives an image's (name, height, width) for the failure message; `tile` is
    the tiling in use (the suggestion then goes below it); `free` runs after each OOM."""

    def __init__(self, describe: Callable[[int], tuple[str, int, int]], *, tile: TileSettings | None = None,
                 free: Callable[[], None] = free_device_memory):
        self.describe = describe
        self.tile = tile
        self.free = free
        self.failures: list[OomFailure] = []
        self.limits: dict[Hashable, int] = {}

    def run(self, fn: Callable[[list[int]], R], indices: Sequence[int], key: Hashable = None) -> list[BatchResult[R]]:
        """``fn`` on `indices` in batches; the finished sub-batches in order, failures recorded."""
        limit = self.limits.get(key, len(indices)) or 1
        queue = deque(list(indices[i:i + limit]) for i in range(0, len(indices), limit))
        done: list[BatchResult[R]] = []
        while queue:
            batch = queue.popleft()
            error = None
            try:
                done.append(BatchResult(batch, fn(batch)))
            except Exception as exc:  # noqa: BLE001 -- only out-of-memory is handled; the rest re-raised
                if not is_out_of_memory(exc):
                    raise
                error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if error is None:
                continue
            self.free()  # after the except block: the traceback no longer holds the batch's tensors
            if len(batch) == 1:
                self._fail(batch[0], error)
                continue
            half = (len(batch) + 1) // 2
            self.limits[key] = min(self.limits.get(key, half), half)
            logger.warning("out of GPU memory with %d image(s) per batch: retrying with %d", len(batch), half)
            queue.extendleft([batch[half:], batch[:half]])
        return done

    def _fail(self, index: int, error: str) -> None:
        name, height, width = self.describe(index)
        failure = OomFailure(index, name, height, width, suggest_tile(height, width, self.tile), error)
        self.failures.append(failure)
        logger.error("%s", failure.message)
