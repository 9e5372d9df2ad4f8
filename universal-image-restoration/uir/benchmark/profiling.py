"""Timing, FLOP counting and peak memory for benchmarks of the evaluation pipeline.

- `PhaseTimer` adds up wall-clock time per named phase (DA-CLIP, sampling, metrics, ...),
  synchronising the device at each phase boundary so a phase is charged for its own work.
- `CallTimer` adds up the time of many short pieces of device work without synchronising
  between them: CUDA events on CUDA, `time.perf_counter` on the CPU.
- `count_flops(fn, ...)` counts the floating-point operations of one call with
  `torch.utils.flop_counter.FlopCounterMode` (2 per multiply-add, convolutions and matmuls).
- `ProfiledDenoiser` wraps a network as the samplers call it: times every call and adds up
  its FLOPs, counted once per input shape.
- `PeakMemory` reads the peak CUDA memory allocated inside a `with` block.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from uir.runtime import synchronize

__all__ = ["PhaseTimer", "CallTimer", "count_flops", "eager_module", "ProfiledDenoiser", "PeakMemory"]


class PhaseTimer:
    """Wall-clock seconds per phase name, summed over every `with timer.phase(name):` block."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


class CallTimer:
    """Total time of repeated pieces of work, without a synchronisation between them.

    On CUDA each `with timer.measure():` block records a start and an end event on the current
    stream; `seconds()` synchronises once and sums the event intervals (the GPU time from the
    start of the block's first kernel launch to the end of its last kernel). On the CPU the
    blocks are timed with `time.perf_counter`.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.calls = 0
        self._cpu_seconds = 0.0
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    @contextmanager
    def measure(self) -> Iterator[None]:
        self.calls += 1
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            try:
                yield
            finally:
                end.record()
                self._events.append((start, end))
        else:
            began = time.perf_counter()
            try:
                yield
            finally:
                self._cpu_seconds += time.perf_counter() - began

    def seconds(self) -> float:
        if self._events:
            synchronize(self.device)
            self._cpu_seconds += sum(start.elapsed_time(end) for start, end in self._events) / 1000.0
            self._events.clear()
        return self._cpu_seconds


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` (run once, without gradients)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def eager_module(network: nn.Module) -> nn.Module:
    """The module under `torch.compile` (its ``_orig_mod``), or `network` itself."""
    return getattr(network, "_orig_mod", network)


class ProfiledDenoiser:
    """A network as the samplers call it, ``(x, mu, t, text_context=, image_context=)``, timed.

    Every call is timed with a `CallTimer` and adds the FLOPs of one evaluation at its input
    shape; those are counted once per shape by calling `flop_model` (the same network, not
    compiled) under `count_flops`, before the timed call. Arguments are passed on unchanged.
    """

    def __init__(self, model: Callable[..., Tensor], device: torch.device,
                 flop_model: Callable[..., Tensor] | None = None):
        self.model = model
        self.device = device
        self.flop_model = flop_model if flop_model is not None else model
        self.timer = CallTimer(device)
        self.flops = 0
        self.image_evals = 0  # network evaluations counted per image (a batch of B counts B)
        self.flops_per_shape: dict[tuple, int] = {}

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor:
        key = (tuple(x.shape), text_context is not None, image_context is not None)
        if key not in self.flops_per_shape:
            self.flops_per_shape[key] = count_flops(
                self.flop_model, x, mu, t, text_context=text_context, image_context=image_context
            )
        self.flops += self.flops_per_shape[key]
        self.image_evals += x.shape[0]
        with self.timer.measure():
            return self.model(x, mu, t, text_context=text_context, image_context=image_context)

    @property
    def calls(self) -> int:
        return self.timer.calls

    def seconds(self) -> float:
        return self.timer.seconds()

    def reset(self) -> None:
        """Start a new measurement (the per-shape FLOP counts are kept)."""
        self.timer = CallTimer(self.device)
        self.flops = 0
        self.image_evals = 0


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.bytes``: the most CUDA memory
    allocated at once inside the block (None on the CPU)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.bytes: int | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device))
