"""Where and how a network runs, shared by evaluation, training and the benchmark: the device,
autocast precision, channels_last and torch.compile (`RuntimeSettings`, top-level keys of an
options file), one `resolve_device`, one `prepare_network`, and the automatic batch size.

Only the network calls change precision: `NetworkCall` runs the network as its `precision`
policy says (`uir.precision`: autocast, float32 layer groups, TF32) and hands float32 back, so
every sampler's arithmetic stays float32.
`torch.compile` uses ``dynamic=True``. The first call compiles for its exact shape; the first
call with another size recompiles once with symbolic height, width and batch, and that graph
then serves every later size (a batch of one is specialised once more, as PyTorch treats sizes
0 and 1 apart). So a run compiles a handful of graphs, not one per image size. Images are not
padded to a common size instead, since padding changes the UNet's GroupNorm and attention
statistics and so the numbers.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from uir.common.checks import boolean, check_int, choice, device_name
from uir.common.declared import Block, option
from uir.common.errors import OptionsError
from uir.precision import POLICIES, PRECISIONS, PrecisionPolicy, apply_policy, tf32

# `batch_size: auto` never goes beyond this, and keeps this share of free GPU memory in use.
AUTO_BATCH_LIMIT = 64
AUTO_BATCH_HEADROOM = 0.8


def gpu_id_list(key: str, value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(check_int(f"{key}[{i}]", v, minimum=0) for i, v in enumerate(items))


@dataclass(frozen=True)
class RuntimeSettings(Block):
    """Top-level keys: the device and how the network runs on it (defaults: the reference's fp32 path)."""

    device: str = option("auto", check=device_name, flag="--device", help="auto, cpu, cuda or cuda:N")
    gpu_ids: tuple[int, ...] = option((0,), check=gpu_id_list, help="the reference's key: device: auto uses gpu_ids[0]")
    precision: str = option("fp32", check=choice(PRECISIONS), flag="--precision",
                            help="the networks' arithmetic: fp32 (default), bf16 or fp16 autocast, bf16-mixed or "
                                 "fp16-mixed (norms in float32), tf32 (CUDA) (uir.precision)")
    channels_last: bool = option(False, check=boolean, flag="--channels-last", help="channels_last memory format")
    compile: bool = option(False, check=boolean, flag="--compile", help="torch.compile the network (dynamic shapes)")

    def resolve_device(self) -> torch.device:
        return resolve_device(self.device, self.gpu_ids)


def resolve_device(want: str, gpu_ids: Sequence[int] = ()) -> torch.device:
    """`device` option: auto -> cuda:<gpu_ids[0]> when CUDA is available, else cpu. Raises
    OptionsError for a CUDA device this machine does not have."""
    has_cuda = torch.cuda.is_available()
    name = want
    if want == "auto":
        if not has_cuda:
            return torch.device("cpu")
        name = f"cuda:{gpu_ids[0] if gpu_ids else 0}"
    device_ = torch.device(name)
    if device_.type == "cuda":
        if not has_cuda:
            raise OptionsError(f"device: {want!r} asks for CUDA, but torch sees no CUDA device; use device: cpu or auto")
        index = device_.index if device_.index is not None else 0
        count = torch.cuda.device_count()
        if index >= count:
            source = "gpu_ids" if want == "auto" else "device"
            raise OptionsError(f"{source}: CUDA device {index} does not exist; this machine has {count} (0..{count - 1})")
        device_ = torch.device("cuda", index)
    return device_


def describe_device(device_: torch.device) -> str:
    if device_.type == "cuda":
        return f"{device_} ({torch.cuda.get_device_name(device_)})"
    return f"{device_} ({torch.get_num_threads()} threads)"


def synchronize(device_: torch.device) -> None:
    """Wait until the work queued on `device_` has finished (CUDA); nothing to wait for on the CPU."""
    if device_.type == "cuda":
        torch.cuda.synchronize(device_)


class NetworkCall:
    """The network as the samplers call it: ``(x, mu, t, text_context=, image_context=) -> float32``,
    with autocast (`precision`, a name of `uir.precision.POLICIES` or a policy) and channels_last
    inputs applied around the network only."""

    def __init__(self, network: nn.Module, device_: torch.device, *, precision: str | PrecisionPolicy = "fp32",
                 channels_last: bool = False):
        self.network = network
        self.device_type = device_.type
        self.policy = POLICIES[precision] if isinstance(precision, str) else precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return self.policy.autocast_dtype

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        mu = mu.contiguous(memory_format=self.memory_format)
        dtype = self.policy.dtype_at(None if isinstance(t, Tensor) else float(t))
        if not isinstance(t, Tensor):
            # A tensor, not a Python number: torch.compile would specialise on (and recompile for)
            # every time value. The UNet reads the time as float32 either way, so nothing changes.
            t = torch.full((), float(t), dtype=torch.float32, device=x.device)  # no host-to-device copy
        autocast = nullcontext() if dtype is None else torch.autocast(self.device_type, dtype=dtype)
        with tf32(self.device_type, self.policy.tf32), autocast:
            out = self.network(x, mu, t, text_context=text_context, image_context=image_context)
        return out.float()


def prepare_network(network: nn.Module, device_: torch.device, settings: RuntimeSettings) -> NetworkCall:
    """Move `network` to `device_` in eval mode, apply the precision policy (its float32 layers,
    TF32), channels_last and torch.compile, wrap it."""
    policy = POLICIES[settings.precision]
    network = apply_policy(network.to(device_).eval().requires_grad_(False), policy)
    if settings.channels_last:
        network = network.to(memory_format=torch.channels_last)
    if settings.compile:
        network = torch.compile(network, dynamic=True)
    return NetworkCall(network, device_, precision=settings.precision, channels_last=settings.channels_last)


def auto_batch_size(forward: Callable[[int], None], device_: torch.device, *, limit: int = AUTO_BATCH_LIMIT,
                    headroom: float = AUTO_BATCH_HEADROOM) -> int:
    """Images per batch that fit in free GPU memory, from two probe passes (batch 1 and 2)
    of `forward(batch)` at the largest image size. 1 on the CPU."""
    if device_.type != "cuda":
        return 1
    peaks = []
    for batch in (1, 2):
        torch.cuda.synchronize(device_)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device_)
        torch.cuda.reset_peak_memory_stats(device_)
        forward(batch)
        torch.cuda.synchronize(device_)
        peaks.append(torch.cuda.max_memory_allocated(device_) - base)
    per_image = max(peaks[1] - peaks[0], 1)
    fixed = max(peaks[0] - per_image, 0)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device_)
    fits = int((headroom * free - fixed) // per_image)
    return max(1, min(limit, fits))
