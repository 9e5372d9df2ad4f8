"""Writing restored images off the main thread.

`ImageWriter` encodes and writes PNGs on a small thread pool; each file is written to a
temporary name and renamed, so a PNG on disk is always complete. A job's `then` callback
(e.g. the per-image CSV row) runs after its file is in place. Leaving the `with` block,
normally or by an exception (Ctrl-C included), waits for every queued image.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import cv2
import numpy as np

WRITER_THREADS = 4
# Queued images held in memory at most; `submit` blocks beyond this.
MAX_PENDING = 64


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB uint8 ``[H, W, 3]`` image as PNG, atomically (temporary file + rename)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_png: expected uint8 RGB [H, W, 3], got {rgb.dtype} {rgb.shape}")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:  # a full disk, Ctrl-C: no partial temporary file stays behind
        tmp.unlink(missing_ok=True)
        raise


class ImageWriter:
    """A thread pool that writes PNGs; use as a context manager."""

    def __init__(self, threads: int = WRITER_THREADS, max_pending: int = MAX_PENDING):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="png-writer")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._futures: set[Future] = set()
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []

    def submit(self, path: str | os.PathLike, rgb: np.ndarray, then: Callable[[], None] | None = None) -> None:
        self.raise_errors()
        self._slots.acquire()
        future = self._pool.submit(self._job, Path(path), rgb, then)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._done)

    def _job(self, path: Path, rgb: np.ndarray, then: Callable[[], None] | None) -> None:
        write_png(path, rgb)
        if then is not None:
            then()

    def _done(self, future: Future) -> None:
        with self._lock:
            self._futures.discard(future)
        self._slots.release()
        if future.exception() is not None:
            with self._lock:
                self._errors.append(future.exception())

    def wait_idle(self) -> None:
        """Block until every queued image is written; raise the first write error."""
        with self._lock:
            pending = list(self._futures)
        wait(pending)
        self.raise_errors()

    def raise_errors(self) -> None:
        with self._lock:
            error = self._errors[0] if self._errors else None
        if error is not None:
            raise error

    def __enter__(self) -> "ImageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._pool.shutdown(wait=True)
        if exc_type is None:
            self.raise_errors()
