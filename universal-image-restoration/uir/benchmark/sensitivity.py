"""Where reduced precision hurts a trained network: per layer group, and along the sampling path.

A `Variant` runs the network in some mix of precisions:
- `policy`: a `uir.precision.PrecisionPolicy` (autocast dtype, layer groups kept in float32,
  float32 at and below a time);
- `low_groups`: only these layer groups under autocast, the rest in float32 (a group's own
  contribution to the error);
- `tf32`: float32, with the inputs of every convolution, linear layer and matmul rounded to
  TF32's 10-bit mantissa (how TF32 tensor cores read them; they accumulate in float32): TF32
  emulated on a machine that has none.

Two measures against float32, on images with GT:
- `forward_errors`: one network call on x_t = E[x_t | x_0] + sigma_bar_t z at a few times t:
  RMS error of the x_0 prediction, in 8-bit levels (1 = 1/255);
- `sampling_errors`: restorations with samplers: per image |dPSNR|, mean and max.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from uir.metrics import batch_psnr, quantize_to_uint8
from uir.precision import POLICIES, PrecisionPolicy, apply_policy, layer_groups, set_region
from uir.restoration import Restorer
from uir.runtime import NetworkCall
from uir.samplers.base import Sampler
from uir.sde import IRSDE
from uir.sde.predictions import to_data

CROP = 4  # PSNR's crop border, as the demo's
GROUPS = ("time_embedding", "attention", "norm", "first_conv", "last_conv")


def round_to_tf32(x: Tensor) -> Tensor:
    """float32 values rounded (to nearest, ties away from zero) to TF32's 10-bit mantissa."""
    if x.dtype != torch.float32:
        return x
    bits = x.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32).view_as(x)


class TF32Emulation(TorchFunctionMode):
    """Inside the block, convolutions, linear layers and matmuls read TF32-rounded inputs."""

    OPS = {F.conv2d, torch.conv2d, F.linear, torch.matmul, torch.bmm, Tensor.matmul, Tensor.__matmul__,
           F.scaled_dot_product_attention}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.OPS:
            args = tuple(round_to_tf32(a) if isinstance(a, Tensor) else a for a in args)
        return func(*args, **kwargs)


@dataclass(frozen=True)
class Variant:
    label: str
    policy: PrecisionPolicy = field(default_factory=PrecisionPolicy)
    low_groups: tuple[str, ...] = ()
    low_dtype: torch.dtype = torch.bfloat16
    tf32: bool = False

    def call(self, network: nn.Module, device: torch.device) -> Callable[..., Tensor]:
        """The network (a copy) as the samplers call it, in this variant's precisions."""
        network = apply_policy(copy.deepcopy(network), self.policy)
        groups = layer_groups(network)
        for group in self.low_groups:
            for module in groups[group]:
                set_region(module, self.low_dtype)
        call = NetworkCall(network, device, precision=self.policy)
        if not self.tf32:
            return call
        return lambda *args, **kwargs: _emulated(call, *args, **kwargs)


def _emulated(call: NetworkCall, *args, **kwargs) -> Tensor:
    with TF32Emulation():
        return call(*args, **kwargs)


def standard_variants(dtype_name: str = "bf16") -> list[Variant]:
    """Everything in `dtype_name`; each group alone in float32; each group alone in `dtype_name`;
    float32 at t <= 10; fp16; TF32 emulated; and the `mixed` policy."""
    base = POLICIES[dtype_name]
    dtype = base.autocast_dtype
    variants = [Variant(f"{dtype_name} (all)", base)]
    variants += [Variant(f"{dtype_name}, {g} fp32", PrecisionPolicy(dtype, (g,))) for g in GROUPS]
    variants += [Variant(f"only {g} {dtype_name}", low_groups=(g,), low_dtype=dtype) for g in GROUPS]
    variants += [Variant(f"{dtype_name}, fp32 at t <= 10", PrecisionPolicy(dtype, fp32_below_t=10.0)),
                 Variant("fp16 (all)", POLICIES["fp16"]), Variant("TF32 (emulated)", tf32=True),
                 Variant("bf16-mixed", POLICIES["bf16-mixed"]), Variant("fp16-mixed", POLICIES["fp16-mixed"])]
    return variants


def forward_errors(network: nn.Module, variants: Sequence[Variant], x0: Tensor, mu: Tensor, sde: IRSDE,
                   fit_target: str, times: Sequence[int], device: torch.device, seed: int = 0) -> list[dict]:
    """Per variant, the RMS error (8-bit levels) of the x_0 prediction at each time in `times`."""
    g = torch.Generator().manual_seed(seed)
    states = {t: sde.noise_state(x0, mu, t, torch.randn(x0.shape, generator=g)).to(device) for t in times}
    x0, mu = x0.to(device), mu.to(device)

    def predictions(call) -> dict[int, Tensor]:
        out = {}
        with torch.no_grad():
            for t, xt in states.items():
                alpha, sigma = sde.alpha_sigma_at(float(t))
                out[t] = to_data(call(xt, mu, float(t)), fit_target, xt, mu, alpha, sigma, sde.sigma_inf)
        return out

    exact = predictions(NetworkCall(network, device))
    rows = []
    for variant in variants:
        got = predictions(variant.call(network, device))
        rows.append({"variant": variant.label,
                     **{f"t={t}": 255 * float((got[t] - exact[t]).pow(2).mean().sqrt()) for t in times}})
    return rows


def psnrs(restorer: Restorer, lq: Tensor, gt_u8: Tensor, seeds: list[int], sampler: Sampler) -> Tensor:
    with torch.no_grad():
        out = restorer.restore(lq, seeds, sampler).x
    crop = (..., slice(CROP, -CROP), slice(CROP, -CROP))
    return batch_psnr(quantize_to_uint8(out)[crop], gt_u8[crop])


def sampling_errors(network: nn.Module, variants: Sequence[Variant], lq: Tensor, gt_u8: Tensor, seeds: list[int],
                    samplers: dict[str, Sampler], sde: IRSDE, device: torch.device) -> list[dict]:
    """Per variant and sampler: mean and max over images of |PSNR - PSNR in float32| (dB)."""
    lq, gt_u8 = lq.to(device), gt_u8.to(device)
    exact = {name: psnrs(Restorer(sde, NetworkCall(network, device), None, device), lq, gt_u8, seeds, s)
             for name, s in samplers.items()}
    rows = []
    for variant in variants:
        restorer = Restorer(sde, variant.call(network, device), None, device)
        row = {"variant": variant.label}
        for name, sampler in samplers.items():
            d = (psnrs(restorer, lq, gt_u8, seeds, sampler) - exact[name]).abs()
            row[f"{name} mean"], row[f"{name} max"] = float(d.mean()), float(d.max())
        rows.append(row)
    return rows
