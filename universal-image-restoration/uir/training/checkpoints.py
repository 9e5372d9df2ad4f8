"""The files of an experiment folder, and the training states a run resumes from.

    models/<step>_G.pth          raw weights at each save (the reference's name)
    models/latest_G.pth          the newest of them (the reference writes it at the end)
    models/latest.pth            EMA weights (what test.py should load)
    models/lastest_EMA.pth       the same file under the reference's name (its spelling)
    models/best.pth              EMA weights of the best validation PSNR so far
    training_state/latest.state  raw weights, EMA, optimizer, step, best, options: for --resume

Every weights file is a plain state dict of CPU tensors with the network's own keys, loadable
with strict=True by test.py (`uir.models.load_network`) and by the reference's `load_network`.
Files are written to a temporary name and renamed, so an interrupted save never leaves a
broken file; the second name of a file is a hard link (a copy where links are not possible).

A resumed state is ours (`training_state/latest.state`) or the reference's
(`training_state/<iter>.state`: iter, optimizers, schedulers; its weights in
`models/<iter>_G.pth` beside it). From the reference's, the EMA starts again from the weights,
as the reference's own resume does, and the learning rate follows from the step.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from uir.common.errors import CheckpointError, CheckpointNotFoundError
from uir.models.checkpoint import UNET_WEIGHTS_HINT, load_state_dict_file

STATE_FILE = Path("training_state") / "latest.state"
LATEST_MODEL = Path("models") / "latest.pth"
REFERENCE_EMA = Path("models") / "lastest_EMA.pth"
BEST_MODEL = Path("models") / "best.pth"
LATEST_RAW = Path("models") / "latest_G.pth"
RESUME_OPTION = "path.resume_state"


def raw_model_file(step: int) -> Path:
    return Path("models") / f"{step}_G.pth"


def cpu_state_dict(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: an interrupted save never leaves a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def link_atomic(source: Path, path: Path) -> None:
    """`path` becomes a second name of `source` (a hard link, or a copy), replaced atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, path)


def save_weights(folder: Path, step: int, raw: nn.Module, ema: nn.Module) -> None:
    """The raw weights as <step>_G.pth and latest_G.pth, the EMA as latest.pth and lastest_EMA.pth."""
    save_atomic(cpu_state_dict(raw), folder / raw_model_file(step))
    link_atomic(folder / raw_model_file(step), folder / LATEST_RAW)
    save_atomic(cpu_state_dict(ema), folder / LATEST_MODEL)
    link_atomic(folder / LATEST_MODEL, folder / REFERENCE_EMA)


@dataclass
class TrainingState:
    """What a run resumes from. `ema` and `options` are None for the reference's states."""

    step: int
    model: dict[str, Tensor]
    optimizer: dict
    ema: dict | None = None
    best: dict | None = None
    options: dict | None = None

    def to_file(self) -> dict:
        return {"step": self.step, "model": self.model, "ema": self.ema, "optimizer": self.optimizer,
                "best": self.best, "options": yaml.safe_dump(self.options, sort_keys=False)}

    @property
    def best_so_far(self) -> dict[str, float]:
        best = self.best or {"psnr": -math.inf, "step": 0}
        return {"psnr": float(best["psnr"]), "step": int(best["step"])}


def read_training_state(path: str | Path, option: str = RESUME_OPTION) -> TrainingState:
    """Our training state or the reference's (see the module's docstring); errors name `option`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{option}: {path} does not exist (or is not a file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many kinds for a bad file
        raise CheckpointError(f"{option}: {path} cannot be read as a training state: {exc}") from exc
    if isinstance(state, dict) and {"step", "model", "optimizer"} <= set(state):
        return TrainingState(int(state["step"]), state["model"], state["optimizer"], state.get("ema"),
                             state.get("best"), yaml.safe_load(state["options"]) if state.get("options") else None)
    if isinstance(state, dict) and {"iter", "optimizers"} <= set(state):
        step = int(state["iter"])
        weights = path.parent.parent / raw_model_file(step)
        model = load_state_dict_file(weights, option=f"{option} (the reference's weights of iter {step})",
                                     weights_hint=UNET_WEIGHTS_HINT)
        return TrainingState(step, model, state["optimizers"][0])
    raise CheckpointError(f"{option}: {path} is not a training state (ours holds step, model and optimizer; the "
                          f"reference's iter and optimizers)")
