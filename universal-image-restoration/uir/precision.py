"""Precision of the network's arithmetic: the `precision` option's values and how they run.

- `fp32`: float32 (the reference's). On CUDA the reference's PyTorch defaults hold (TF32 for
  cuDNN convolutions, not for matmuls).
- `tf32`: float32 with TF32 for every matmul and convolution on CUDA (on the CPU, which has no
  TF32, the same as fp32).
- `bf16`, `fp16`: the whole network under ``torch.autocast``.
- `fp16-mixed` (the precision policy of issue 17, what `fast: true` uses on CUDA) and
  `bf16-mixed`: autocast with every norm in float32 (`MIXED_FP32_GROUPS`), TF32 for the
  float32 matmuls on CUDA. The ConditionalUNet's ChannelLayerNorm takes eps 1e-3 for half
  inputs (as the reference) and 1e-5 for float32 ones, so under plain autocast every norm
  changes its formula; that, not rounding, was most of bf16's error on the demo network.
  fp16-mixed keeps PSNR within 0.01 dB of fp32 on the demo set, bf16-mixed within 0.1
  (docs/benchmarks.md, "Precision policy").

A network names its layer groups with ``network.precision_groups() -> {group: [modules]}``
(`ConditionalUNet` does: `time_embedding`, `attention`, `norm`, `first_conv`, `last_conv`).
`set_region(module, dtype)` runs one module in another precision than its surroundings by
swapping its class for a subclass whose `forward` enters ``torch.autocast`` (dtype; output
cast to float32) or leaves it (None; inputs cast to float32); its parameters and state-dict
keys do not change.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from uir.common.errors import OptionsError

# Layer groups kept in float32 by the mixed policies.
MIXED_FP32_GROUPS = ("norm",)


@dataclass(frozen=True)
class PrecisionPolicy:
    """How a `NetworkCall` runs the network: autocast dtype (None: float32), the layer groups
    kept in float32 under it, the time at and below which it runs in float32, and TF32."""

    autocast_dtype: torch.dtype | None = None
    fp32_groups: tuple[str, ...] = ()
    fp32_below_t: float | None = None
    tf32: bool = False

    def dtype_at(self, t: float | None) -> torch.dtype | None:
        """The autocast dtype of a call at time `t` (None: float32)."""
        if self.fp32_below_t is not None and t is not None and t <= self.fp32_below_t:
            return None
        return self.autocast_dtype


POLICIES = {
    "fp32": PrecisionPolicy(),
    "bf16": PrecisionPolicy(torch.bfloat16),
    "fp16": PrecisionPolicy(torch.float16),
    "tf32": PrecisionPolicy(tf32=True),
    "bf16-mixed": PrecisionPolicy(torch.bfloat16, MIXED_FP32_GROUPS, tf32=True),
    "fp16-mixed": PrecisionPolicy(torch.float16, MIXED_FP32_GROUPS, tf32=True),
}
PRECISIONS = tuple(POLICIES)


def _cast(value, dtype: torch.dtype):
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


def _device_type(args: Iterable) -> str:
    return next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")


@functools.lru_cache(maxsize=None)
def _region_class(cls: type[nn.Module], dtype: torch.dtype | None) -> type[nn.Module]:
    """`cls` whose forward runs under autocast at `dtype` (its output handed on as float32, with
    its rounding), or (None) outside autocast in float32."""

    def forward(self, *args, **kwargs):
        device_type = _device_type([*args, *kwargs.values()])
        if dtype is None:
            args = tuple(_cast(a, torch.float32) for a in args)
            kwargs = {k: _cast(v, torch.float32) for k, v in kwargs.items()}
            with torch.autocast(device_type, enabled=False):
                return cls.forward(self, *args, **kwargs)
        with torch.autocast(device_type, dtype=dtype):
            return _cast(cls.forward(self, *args, **kwargs), torch.float32)

    name = f"{cls.__name__}In{'Float32' if dtype is None else str(dtype).rsplit('.', 1)[-1].title()}"
    return type(name, (cls,), {"forward": forward, "_region_base": cls})


def set_region(module: nn.Module, dtype: torch.dtype | None) -> None:
    """Run `module` under autocast at `dtype`, or in float32 outside autocast (None)."""
    base = getattr(type(module), "_region_base", type(module))
    module.__class__ = _region_class(base, dtype)


def layer_groups(network: nn.Module) -> dict[str, list[nn.Module]]:
    """The network's named layer groups (empty when it names none)."""
    groups = getattr(network, "precision_groups", None)
    return groups() if callable(groups) else {}


def apply_policy(network: nn.Module, policy: PrecisionPolicy) -> nn.Module:
    """Keep `policy.fp32_groups` of `network` in float32 under autocast. Raises OptionsError
    when the network does not name such a group."""
    if not policy.fp32_groups:
        return network
    groups = layer_groups(network)
    for group in policy.fp32_groups:
        if group not in groups:
            raise OptionsError(f"precision: {type(network).__name__} names no layer group {group!r} "
                             f"(it names: {', '.join(groups) or 'none'}); use fp32, bf16 or fp16")
        for module in groups[group]:
            set_region(module, None)
    return network


@contextmanager
def tf32(device: torch.device | str, enabled: bool) -> Iterator[None]:
    """TF32 for float32 matmuls and cuDNN convolutions on CUDA inside the block, the previous
    settings after it (PyTorch keeps them process-wide, so a float32 path elsewhere in the
    process is not changed). Nothing to do on the CPU, which has no TF32."""
    if not enabled or torch.device(device).type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
