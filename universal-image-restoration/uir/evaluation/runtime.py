"""Where and how the networks run: device choice, autocast, channels_last, torch.compile,
and the automatic batch size.

Only the network calls change precision: `NetworkCall` runs the UNet under
``torch.autocast`` and hands float32 back, so every sampler's arithmetic stays float32.
`torch.compile` uses ``dynamic=True``. The first call compiles for its exact shape; the first
call with another size recompiles once with symbolic height, width and batch, and that graph
then serves every later size (a batch of one is specialised once more, as PyTorch treats sizes
0 and 1 apart). So a run compiles a handful of graphs, not one per image size. Images are not
padded to a common size instead, since padding changes the UNet's GroupNorm and attention
statistics and so the numbers.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

from uir.options.schema import EvalOptions

logger = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# `batch_size: auto` never goes beyond this, and keeps this share of free GPU memory in use.
AUTO_BATCH_LIMIT = 64
AUTO_BATCH_HEADROOM = 0.8


def resolve_device(options: EvalOptions) -> torch.device:
    """`device` option: auto -> cuda:<gpu_ids[0]> when CUDA is available, else cpu."""
    want = options.device
    has_cuda = torch.cuda.is_available()
    if want == "auto":
        if not has_cuda:
            return torch.device("cpu")
        index = options.gpu_ids[0] if options.gpu_ids else 0
        want = f"cuda:{index}"
    device = torch.device(want)
    if device.type == "cuda":
        if not has_cuda:
            raise ValueError(f"device: {options.device!r} asks for CUDA, but torch sees no CUDA device; use device: cpu or auto")
        index = device.index if device.index is not None else 0
        count = torch.cuda.device_count()
        if index >= count:
            source = "gpu_ids" if options.device == "auto" else "device"
            raise ValueError(f"{source}: CUDA device {index} does not exist; this machine has {count} (0..{count - 1})")
        device = torch.device("cuda", index)
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({torch.get_num_threads()} threads)"


class NetworkCall:
    """The UNet as the samplers call it: ``(x, mu, t, text_context=, image_context=) -> float32``,
    with autocast (`precision`) and channels_last inputs applied around the network only."""

    def __init__(self, network: nn.Module, device: torch.device, *, precision: str = "fp32",
                 channels_last: bool = False):
        self.network = network
        self.device_type = device.type
        self.autocast_dtype = AUTOCAST_DTYPES[precision]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, x: Tensor, mu: Tensor, t, *, text_context=None, image_context=None) -> Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        mu = mu.contiguous(memory_format=self.memory_format)
        if not isinstance(t, Tensor):
            # A tensor, not a Python number: torch.compile would specialise on (and recompile for)
            # every time value. The UNet reads the time as float32 either way, so nothing changes.
            t = torch.full((), float(t), dtype=torch.float32, device=x.device)  # no host-to-device copy
        if self.autocast_dtype is None:
            out = self.network(x, mu, t, text_context=text_context, image_context=image_context)
        else:
            with torch.autocast(self.device_type, dtype=self.autocast_dtype):
                out = self.network(x, mu, t, text_context=text_context, image_context=image_context)
        return out.float()


def prepare_network(network: nn.Module, device: torch.device, options: EvalOptions) -> NetworkCall:
    """Move `network` to `device` in eval mode, apply channels_last / torch.compile, wrap it."""
    network = network.to(device).eval().requires_grad_(False)
    if options.channels_last:
        network = network.to(memory_format=torch.channels_last)
    if options.compile:
        network = torch.compile(network, dynamic=True)
    return NetworkCall(network, device, precision=options.precision, channels_last=options.channels_last)


def auto_batch_size(forward: Callable[[int], None], device: torch.device, *, limit: int = AUTO_BATCH_LIMIT,
                    headroom: float = AUTO_BATCH_HEADROOM) -> int:
    """Images per batch that fit in free GPU memory, from two probe passes (batch 1 and 2)
    of `forward(batch)` at the largest image size. 1 on the CPU."""
    if device.type != "cuda":
        return 1
    peaks = []
    for batch in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        forward(batch)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_image = max(peaks[1] - peaks[0], 1)
    fixed = max(peaks[0] - per_image, 0)
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    fits = int((headroom * free - fixed) // per_image)
    return max(1, min(limit, fits))
