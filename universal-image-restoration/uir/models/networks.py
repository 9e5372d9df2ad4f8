"""Build the generator named by an options file's `network_G` block, and load its weights."""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from torch import nn

from uir.models.checkpoint import UNET_WEIGHTS_HINT, load_into, load_state_dict_file
from uir.models.unet import ConditionalUNet
from uir.common.checks import check_keys, closest

NETWORKS: dict[str, type[nn.Module]] = {"ConditionalUNet": ConditionalUNet}
WEIGHTS_HINTS: dict[str, str] = {"ConditionalUNet": UNET_WEIGHTS_HINT}
PRETRAINED_OPTION = "path.pretrain_model_G"


def _network_class(which_model_G: str) -> type[nn.Module]:
    if which_model_G not in NETWORKS:
        hint = closest(which_model_G, NETWORKS)
        did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
        raise ValueError(
            f"network_G.which_model_G: unknown network {which_model_G!r}{did_you_mean}; "
            f"valid: {', '.join(NETWORKS)}"
        )
    return NETWORKS[which_model_G]


def network_arguments(which_model_G: str, setting: Mapping[str, Any] | None) -> dict[str, Any]:
    """`setting` checked against the network's constructor, with its defaults filled in."""
    parameters = list(inspect.signature(_network_class(which_model_G)).parameters.values())
    setting = dict(setting or {})
    check_keys("network_G.setting", setting, [p.name for p in parameters])
    required = [p.name for p in parameters if p.default is inspect.Parameter.empty]
    absent = [name for name in required if name not in setting]
    if absent:
        raise ValueError(
            f"network_G.setting: missing {', '.join(absent)} for {which_model_G}; "
            f"required keys: {', '.join(required)}"
        )
    arguments = {p.name: setting.get(p.name, p.default) for p in parameters}
    check = getattr(_network_class(which_model_G), "check_setting", None)
    if check is not None:
        check("network_G.setting", **arguments)
    return arguments


def build_network(which_model_G: str, setting: Mapping[str, Any] | None) -> nn.Module:
    """`network_G.which_model_G` built from `network_G.setting` (names and keys validated)."""
    return _network_class(which_model_G)(**network_arguments(which_model_G, setting))


def describe_network(which_model_G: str, setting: Mapping[str, Any] | None) -> str:
    """E.g. `ConditionalUNet(in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], ...)`, defaults included."""
    arguments = network_arguments(which_model_G, setting)
    shown = ", ".join(
        f"{name}={list(value) if isinstance(value, tuple) else value!r}" for name, value in arguments.items()
    )
    return f"{which_model_G}({shown})"


def load_network(
    which_model_G: str,
    setting: Mapping[str, Any] | None,
    path: str | os.PathLike | None,
    *,
    strict: bool = True,
) -> nn.Module:
    """Build the network and load the checkpoint that `path.pretrain_model_G` points at."""
    model = build_network(which_model_G, setting)
    state_dict = load_state_dict_file(path, option=PRETRAINED_OPTION, weights_hint=WEIGHTS_HINTS[which_model_G])
    load_into(model, state_dict, strict=strict, expected=describe_network(which_model_G, setting), source=path)
    return model
