"""What restoring images needs, for test.py and the Python API alike: the network and its
checkpoints, DA-CLIP, the IR-SDE, the `sampler:` block, how the network runs (device, precision,
batching, tiling) and the seed. `RestorerOptions` reads no test set; `EvalOptions` adds one.

`fast: true` (test.py --fast) fills `FAST_SETTINGS` of the device's type into the keys the file
leaves unset. It is applied where the device is known (`for_device`), so validating options never
touches the device.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from uir.common.checks import boolean, check_int, choice, integer
from uir.common.declared import Block, option
from uir.options.blocks import NetworkOptions, PathOptions, SDEOptions
from uir.options.sweep import SweepPoint
from uir.runtime import RuntimeSettings
from uir.samplers.options import SamplerBlock, SamplerOptions, sampler_block
from uir.samplers.registry import SAMPLERS
from uir.tiling import TileSettings

DACLIP_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_DACLIP_CONFIG = "ViT-B-32"
# Image i of a task is seeded with seed + i, and torch's generators take seeds below 2^64.
MAX_SEED = 2**63 - 1
# `fast: true` (test.py --fast), per device type: the settings that keep the precision policy's
# quality bar (docs/benchmarks.md, "Precision policy"). A key the options set explicitly keeps its
# value. On the CPU nothing pays: fp16-mixed runs slower than fp32 there (bf16-mixed, faster,
# misses the bar), batches are 1, and compiling takes minutes.
FAST_SETTINGS = {
    "cuda": {"batch_size": "auto", "precision": "fp16-mixed", "channels_last": True, "compile": True},
    "cpu": {},
}


def batch_size(key: str, value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        raise ValueError(f"{key}: expected a positive integer or 'auto', got {value!r}")
    return check_int(key, value, minimum=1)


def daclip_model_config(key: str, value: Any) -> str | dict[str, Any]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    raise ValueError(
        f"{key}: expected an open_clip model name (e.g. {DEFAULT_DACLIP_CONFIG!r}) or a model "
        f"config mapping (embed_dim, vision_cfg, text_cfg), got {value!r}"
    )


@dataclass(frozen=True)
class RestorerOptions(Block):
    """Everything `uir.ImageRestorer` needs (and test.py's networks and sampling)."""

    network_G: NetworkOptions = option(block=NetworkOptions, missing="it names the network (which_model_G) and its setting")
    sde: SDEOptions = option(block=SDEOptions)
    path: PathOptions = option(block=PathOptions)
    sampler: SamplerBlock = option(factory=SamplerBlock, check=sampler_block,
                                   help="the samplers' keys (each sampler declares those it reads)")
    daclip_config: str | dict[str, Any] = option(DEFAULT_DACLIP_CONFIG, check=daclip_model_config)
    daclip_precision: str = option("auto", check=choice(DACLIP_PRECISIONS),
                                   help="auto: fp16 autocast on CUDA, fp32 on the CPU (the reference's)")
    seed: int = option(0, check=integer(minimum=0, maximum=MAX_SEED), flag="--seed", metavar="N",
                       help="base seed; image i of a task uses seed + i")
    runtime: RuntimeSettings = option(block=RuntimeSettings, flatten=True)
    fast: bool = option(False, check=boolean, flag="--fast",
                        help="the fast settings that keep the quality bar (FAST_SETTINGS) for keys not set")
    batch_size: int | str = option("auto", check=batch_size, flag="--batch-size", metavar="N|auto",
                                   help="images per batch (same size only); auto: from free GPU memory, 1 on the CPU")
    tile: TileSettings | None = option(None, block=TileSettings,
                                       help="evaluate the network on overlapping tiles (images larger than memory)")

    def __post_init__(self) -> None:
        served = self.sampler.serving([SAMPLERS[self.sde.algorithm]])
        object.__setattr__(self, "sampler", served)

    def sampler_names(self, points: tuple[SweepPoint, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.sampler for p in points)) or (self.sde.algorithm,)

    def sampler_options(self, point: SweepPoint) -> SamplerOptions:
        """The sampler's options for one point of the sweep: its NFE and overrides applied."""
        return self.sampler.options_for(SAMPLERS[point.sampler], num_sample_steps=point.nfe, **dict(point.overrides))

    def fast_settings(self, device: torch.device) -> dict[str, Any]:
        """With `fast: true`, the `FAST_SETTINGS` of `device`'s type that the options leave unset."""
        if not self.fast:
            return {}
        given = self.given_keys | self.runtime.given_keys
        return {k: v for k, v in FAST_SETTINGS.get(device.type, {}).items() if k not in given}
