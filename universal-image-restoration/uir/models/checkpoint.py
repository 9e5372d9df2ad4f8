"""Reading checkpoints and loading them into networks, with errors that say what to fix.

Every network of the project (the ConditionalUNet, DA-CLIP) goes through the same two steps:
`load_state_dict_file` (safe `torch.load`, unwrapping, `module.` stripping) and `load_into`
(key and shape comparison before `load_state_dict`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from uir.common.errors import CheckpointError, CheckpointMismatchError, CheckpointNotFoundError
from uir.common.tensors import first_nonfinite, torch_load_problem

logger = logging.getLogger(__name__)

UNET_WEIGHTS_HINT = (
    "universal-ir.pth from HuggingFace weblzw/daclip-uir-ViT-B-32-irsde "
    "(https://huggingface.co/weblzw/daclip-uir-ViT-B-32-irsde)"
)
DACLIP_WEIGHTS_HINT = (
    "daclip_ViT-B-32.pt from HuggingFace weblzw/daclip-uir-ViT-B-32-irsde "
    "(https://huggingface.co/weblzw/daclip-uir-ViT-B-32-irsde)"
)

# Keys under which training scripts nest the state dict (open_clip: "state_dict";
# BasicSR: "params_ema" / "params"), in order of preference.
WRAPPER_KEYS = ("state_dict", "params_ema", "params")
DATA_PARALLEL_PREFIX = "module."
# How many keys of each kind a mismatch message lists.
LISTED_KEYS = 5


def load_state_dict_file(
    path: str | os.PathLike | None, *, option: str, weights_hint: str
) -> dict[str, torch.Tensor]:
    """Read a state dict from `path` (named by the options key `option`) on the CPU.

    Loads with `weights_only=True`; accepts a plain state dict or one nested under
    `state_dict`, `params_ema` or `params`; strips the `module.` prefix of (Distributed)
    DataParallel keys.
    """
    if path is None or str(path).strip() == "":
        raise CheckpointNotFoundError(f"{option} is not set: point it at {weights_hint}")
    file = Path(path).expanduser()
    if not file.is_file():
        problem = "is a directory, not a checkpoint file" if file.is_dir() else "does not exist"
        raise CheckpointNotFoundError(
            f"{option}: {file} {problem}. Download {weights_hint} and set {option} to its path."
        )
    try:
        obj = torch.load(file, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for unreadable files
        raise CheckpointError(
            f"{option}: cannot read {file} as a PyTorch checkpoint (it {torch_load_problem(file, exc)})"
        ) from exc
    return _clean_state_dict(_unwrap(obj, file), file)


def _unwrap(obj: object, file: Path) -> Mapping:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{file} holds a {type(obj).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


def _clean_state_dict(state: Mapping, file: Path) -> dict[str, torch.Tensor]:
    bad = [str(k) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise CheckpointError(
            f"{file} is not a state dict: {len(bad)} entries are not name -> tensor "
            f"(first: {', '.join(bad[:LISTED_KEYS])}); top-level wrappers understood: {', '.join(WRAPPER_KEYS)}"
        )
    clean: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key[len(DATA_PARALLEL_PREFIX):] if key.startswith(DATA_PARALLEL_PREFIX) else key
        if name in clean:
            raise CheckpointError(f"{file}: key {name!r} appears both with and without the 'module.' prefix")
        clean[name] = value
    bad = first_nonfinite(clean)
    if bad is not None:
        raise CheckpointError(
            f"{file}: tensor {bad!r} holds NaN or infinite values; the checkpoint is damaged (or was saved "
            f"from a training that diverged), and a network with it would only produce NaN images"
        )
    return clean


def load_into(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    expected: str,
    source: str | os.PathLike | None = None,
) -> None:
    """Copy `state_dict` into `model` after checking keys and shapes.

    `expected` describes the configuration the model was built from (it appears in the error);
    `source` names where the state dict came from. With `strict=False` the keys the two share
    are loaded and the others are logged, but differing shapes are still an error.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    shared = len(own) - len(missing)
    if mismatched or (strict and (missing or unexpected)) or (own and shared == 0):
        message = mismatch_message(
            own, state_dict, missing, unexpected, mismatched, strict=strict, expected=expected, source=source
        )
        raise CheckpointMismatchError(message)
    if strict:
        model.load_state_dict(state_dict, strict=True)
        return
    model.load_state_dict({k: state_dict[k] for k in own if k in state_dict}, strict=False)
    if missing or unexpected:
        logger.warning(
            "strict=False: loaded %d tensors into %s; %d missing (kept as initialised), %d unexpected (ignored)",
            shared, expected, len(missing), len(unexpected),
        )


def mismatch_message(
    own: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
    *,
    strict: bool,
    expected: str,
    source: str | os.PathLike | None,
) -> str:
    """The text of a CheckpointMismatchError."""
    what = f"checkpoint {source}" if source is not None else "state dict"
    lines = [
        f"{what} does not fit {expected} (strict={strict}): {len(missing)} missing, "
        f"{len(unexpected)} unexpected, {len(mismatched)} with a different shape"
    ]
    if missing:
        lines.append(f"  missing ({len(missing)}): " + _listing([f"{k} {_shape(own[k])}" for k in missing]))
    if unexpected:
        lines.append(f"  unexpected ({len(unexpected)}): " + _listing([f"{k} {_shape(given[k])}" for k in unexpected]))
    if mismatched:
        lines.append(
            f"  different shape ({len(mismatched)}): "
            + _listing([f"{k} checkpoint {_shape(given[k])} vs model {_shape(own[k])}" for k in mismatched])
        )
    if mismatched and not strict:
        lines.append("strict=False loads the keys both share, but cannot load a tensor whose shape differs.")
    elif own and len(own) == len(missing):
        lines.append("No key of the checkpoint belongs to this network: is it the right file?")
    lines.append("The checkpoint was saved from another network or configuration: check the options against it.")
    return "\n".join(lines)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED_KEYS])
    return shown + (f", ... ({len(items) - LISTED_KEYS} more)" if len(items) > LISTED_KEYS else "")


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))
