"""The reference's sections of an options file, declared once (keys, defaults, checks, help):
``sde``, ``degradation``, ``datasets``, ``network_G``, ``path`` (and ``sampler``, declared by
the samplers themselves: `uir.samplers.options`)."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from uir.common.checks import boolean, choice, file_path, folder_name, integer, number, optional, text
from uir.common.declared import Block, option
from uir.models.networks import network_arguments
from uir.samplers.registry import SAMPLERS
from uir.sde.settings import IRSDESettings

DATASET_MODES = ("LQGT", "LQ")
# The reference's ten tasks (DA-CLIP's degradation types), in its order.
REFERENCE_TASKS = (
    "motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy",
    "raindrop", "rainy", "shadowed", "snowy", "uncompleted",
)


def mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {value!r}")
    return copy.deepcopy(dict(value))


@dataclass(frozen=True)
class SDEOptions(IRSDESettings):
    """test.py's `sde:` block: the IR-SDE and the sampler name."""

    algorithm: str = option("mrsampler", check=choice(SAMPLERS.names),
                            help="the sampler (a name registered in uir.samplers.SAMPLERS)")


@dataclass(frozen=True)
class DegradationOptions(Block):
    """`degradation:` kept for compatibility; `scale` is the crop_border fallback (as in the reference)."""

    section = "degradation"

    sigma: float | None = option(25.0, check=optional(number()))
    noise_type: str | None = option("G", check=text)
    scale: int = option(4, check=integer(minimum=0), help="crop_border when crop_border is unset")


@dataclass(frozen=True)
class DatasetOptions(Block):
    """One block under `datasets:` (e.g. `test1`): a task's LQ folder and optional GT folder."""

    key: str  # the block's name under `datasets:`, e.g. "test1"
    name: str = option(check=folder_name, missing=f"it names the task (e.g. one of {', '.join(REFERENCE_TASKS)})")
    mode: str = option("LQGT", check=choice(DATASET_MODES))
    dataroot_LQ: str | None = option(None, check=file_path)
    dataroot_GT: str | None = option(None, check=file_path)

    def __post_init__(self) -> None:
        if self.dataroot_LQ is None:
            raise ValueError(f"datasets.{self.key}.dataroot_LQ: not set; point it at the folder of degraded (LQ) images")
        if self.mode != "LQGT":
            object.__setattr__(self, "dataroot_GT", None)


@dataclass(frozen=True)
class NetworkOptions(Block):
    """`network_G:` the generator's class name and constructor settings (defaults filled in)."""

    section = "network_G"

    which_model_G: str = option("ConditionalUNet", check=text)
    setting: dict[str, Any] = option(factory=dict, check=mapping)

    def __post_init__(self) -> None:
        resolved = network_arguments(self.which_model_G, self.setting)
        object.__setattr__(self, "setting", {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()})


@dataclass(frozen=True)
class PathOptions(Block):
    """`path:` the UNet checkpoint, the DA-CLIP checkpoint (~ when the network needs no contexts)."""

    section = "path"

    pretrain_model_G: str | None = option(None, check=file_path)
    daclip: str | None = option(None, check=file_path)
    strict_load: bool = option(True, check=boolean, null_is_default=True)
