"""The options of `train.py`, declared once as frozen blocks (see `options/train_demo.yml`):

    name, seed, device, experiments_root, fit_target     top-level keys
    sde          IR-SDE settings (max_sigma, T, schedule, eps)
    network_G    which_model_G + setting (checked against the network's constructor)
    path         pretrain_model_G / strict_load: start from a checkpoint (optional)
    datasets     train (random crops of ROOT/train/<task>/{LQ,GT}) and val (ROOT/test/...)
    train        optimizer, learning-rate schedule, loss, EMA
    logger       print / validation / checkpoint frequencies

Every error is a ValueError that names the key and says what is valid.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from uir.common.checks import (
    boolean, check_int, choice, device_name, file_path, integer, names, number, optional,
)
from uir.common.declared import Block, option, read
from uir.data.demo import MAX_SIZE
from uir.options.loader import load_with
from uir.options.blocks import NetworkOptions
from uir.samplers.options import SamplerBlock, SamplerOptions, sampler_block
from uir.samplers import SAMPLERS, build_sampler
from uir.sde.irsde import IRSDE
from uir.sde.predictions import FIT_TARGETS
from uir.sde.settings import IRSDESettings
from uir.training.init import NETWORK_INITS
from uir.training.losses import LOSS_TYPES

OPTIMIZERS = ("Adam", "AdamW")
LR_SCHEMES = ("cosine", "multistep", "constant")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _required_path(key: str, value: Any) -> str:
    out = file_path(key, value)
    if out is None:
        raise ValueError(f"{key}: expected a folder or file path, got {value!r}")
    return out


def _experiment_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise ValueError(f"{key}: expected a folder name of letters, digits, '.', '_' or '-', got {value!r}")
    return value


def _steps(key: str, value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key}: expected a list of step numbers, got {value!r}")
    return tuple(check_int(f"{key}[{i}]", s, minimum=1) for i, s in enumerate(value))


@dataclass(frozen=True)
class InitSettings(Block):
    """`path:` optional weights to start from (fine-tuning)."""

    section = "path"

    pretrain_model_G: str | None = option(None, check=file_path)
    strict_load: bool = option(True, check=boolean)


@dataclass(frozen=True)
class DemoDataSettings(Block):
    """`datasets.train.make_demo:` arguments of `uir.data.demo.make_demo_dataset`, used to build
    the data root when it does not exist."""

    seed: int = option(0, check=integer(minimum=0))
    test_size: int = option(128, check=integer(minimum=16, maximum=MAX_SIZE))
    n_test_per_task: int = option(3, check=integer(minimum=0))
    n_train_per_task: int = option(48, check=integer(minimum=0))
    train_size: int = option(128, check=integer(minimum=16, maximum=MAX_SIZE))
    train_dark_fraction: float = option(0.0, check=number(0, 1), help="share of GT crops darkened (not low-light's)")
    workers: int = option(1, check=integer(minimum=1), help="processes that write the set (the same files for any number)")


@dataclass(frozen=True)
class TrainDataSettings(Block):
    """`datasets.train:` random `patch_size` crops of ROOT/train/<task>/{LQ,GT}, all tasks mixed."""

    dataroot: str = option(check=_required_path, missing="point it at a folder holding train/<task>/{LQ,GT}")
    tasks: tuple[str, ...] = option(check=names(), missing="list the task folders under datasets.train.dataroot/train")
    patch_size: int = option(64, check=integer(minimum=8))
    batch_size: int = option(16, check=integer(minimum=1))
    use_flip: bool = option(True, check=boolean)
    use_rot: bool = option(True, check=boolean)
    make_demo: DemoDataSettings | None = option(None, block=DemoDataSettings, help="build the demo set when missing")


@dataclass(frozen=True)
class ValSettings(Block):
    """`datasets.val:` restoring ROOT/test/<task>/{LQ,GT} with one sampler; the mean PSNR picks
    the best checkpoint. `dataroot` and `tasks` default to the training ones."""

    dataroot: str | None = option(None, check=file_path)
    tasks: tuple[str, ...] | None = option(None, check=optional(names()))
    max_images_per_task: int | None = option(None, check=optional(integer(minimum=1)))
    sampler: str = option("mrsampler", check=choice(SAMPLERS))
    sampler_options: SamplerBlock = option(factory=SamplerBlock, check=sampler_block, help="a test.py `sampler:` block")
    batch_size: int = option(8, check=integer(minimum=1))
    crop_border: int = option(0, check=integer(minimum=0))
    seed: int = option(0, check=integer(minimum=0))


@dataclass(frozen=True)
class TrainDatasets(Block):
    """`datasets:` the training crops and the validation images."""

    train: TrainDataSettings = option(block=TrainDataSettings,
                                      missing="it names the training data (dataroot, tasks, patch_size, ...)")
    val: ValSettings = option(block=ValSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "val", replace(self.val, dataroot=self.val.dataroot or self.train.dataroot,
                                                tasks=self.val.tasks or self.train.tasks))


@dataclass(frozen=True)
class EMASettings(Block):
    """`train.ema:` exponential moving average of the weights (the saved model), with the warm-up
    of ema_pytorch that the reference uses: decay = min(beta, 1 - (1 + k / inv_gamma) ** -power),
    k = updates after `update_after_step`; before that the average is a copy of the weights."""

    beta: float = option(0.995, check=number(0, 1, open_high=True))
    update_every: int = option(10, check=integer(minimum=1))
    update_after_step: int = option(100, check=integer(minimum=0))
    inv_gamma: float = option(1.0, check=number(0, open_low=True))
    power: float = option(2 / 3, check=number(0, open_low=True))


@dataclass(frozen=True)
class OptimSettings(Block):
    """`train:` optimizer, learning rate schedule (per step), weight initialisation, loss and EMA."""

    niter: int = option(check=integer(minimum=1), missing="the number of training steps")
    optimizer: str = option("AdamW", check=choice(OPTIMIZERS))
    lr: float = option(2e-4, check=number(0, open_low=True))
    beta1: float = option(0.9, check=number(0, 1, open_high=True))
    beta2: float = option(0.99, check=number(0, 1, open_high=True))
    weight_decay: float = option(0.0, check=number(0))
    lr_scheme: str = option("cosine", check=choice(LR_SCHEMES))
    warmup_iter: int = option(0, check=integer(minimum=0))
    eta_min: float = option(1e-6, check=number(0))
    lr_steps: tuple[int, ...] = option((), check=_steps)
    lr_gamma: float = option(0.5, check=number(0, open_low=True))
    grad_clip_norm: float | None = option(None, check=optional(number(0, open_low=True)),
                                          help="clip the gradient norm (~: no clipping)")
    init: str = option("default", check=choice(NETWORK_INITS))
    loss_type: str = option("l1", check=choice(LOSS_TYPES))
    loss_weight: float = option(1.0, check=number(0, open_low=True))
    ema: EMASettings = option(block=EMASettings)
    deterministic: bool = option(True, check=boolean,
                                 help="CUDA: reproducible cuDNN algorithms; false lets cuDNN pick the fastest")


@dataclass(frozen=True)
class LoggerSettings(Block):
    """`logger:` how often (in steps) to log the loss, validate, and save the latest checkpoint."""

    print_freq: int = option(100, check=integer(minimum=1))
    val_freq: int = option(1000, check=integer(minimum=1))
    save_checkpoint_freq: int = option(1000, check=integer(minimum=1))


@dataclass(frozen=True, kw_only=True)
class TrainOptions(Block):
    name: str = option(check=_experiment_name, missing="the experiment's folder name")
    seed: int = option(0, check=integer(minimum=0))
    device: str = option("auto", check=device_name)
    experiments_root: str = option("experiments", check=_required_path)
    fit_target: str = option("noise", check=choice(FIT_TARGETS), help="what the network learns to predict")
    sde: IRSDESettings = option(block=IRSDESettings)
    network_G: NetworkOptions = option(block=NetworkOptions, missing="give which_model_G and setting")
    path: InitSettings = option(block=InitSettings)
    datasets: TrainDatasets = option(block=TrainDatasets, missing="it names the training data (datasets.train)")
    train: OptimSettings = option(block=OptimSettings, missing="the optimizer block (train.niter at least)")
    logger: LoggerSettings = option(block=LoggerSettings)

    def __post_init__(self) -> None:
        if self.train.init == "noise_skip" and self.fit_target != "noise":
            raise ValueError(f"train.init: noise_skip starts the network as a noise predictor; it needs fit_target: "
                             f"noise (got {self.fit_target!r}); use init: default")
        given = self.datasets.val.sampler_options.given.get("fit_target")
        if given is not None and given != self.fit_target:
            raise ValueError(
                f"datasets.val.sampler_options.fit_target: {given!r} differs from fit_target {self.fit_target!r}; "
                f"the validation sampler must read the network as it is trained (leave the key out)"
            )
        try:  # build the validation sampler now, so that a bad one fails before training starts
            build_sampler(self.datasets.val.sampler, IRSDE.from_settings(self.sde), self.val_sampler)
        except ValueError as exc:
            raise ValueError(f"datasets.val ({self.datasets.val.sampler}, sampler_options): {exc}") from exc

    @property
    def experiment_dir(self) -> str:
        return os.path.join(self.experiments_root, self.name)

    @property
    def val_sampler(self) -> SamplerOptions:
        """The validation sampler's options, reading the network as it is trained."""
        val = self.datasets.val
        return val.sampler_options.options_for(SAMPLERS[val.sampler], "datasets.val.sampler_options",
                                               fit_target=self.fit_target)


def parse_train_options(raw: Any) -> TrainOptions:
    """Validate a raw options mapping (as read from YAML) into `TrainOptions`."""
    return read(TrainOptions, raw)


def load_train_options(path: str | os.PathLike, overrides: Iterable[tuple[str, Any]] = ()) -> TrainOptions:
    """train.py's options: read `path`, apply overrides, validate. Raises OptionsError."""
    return load_with(parse_train_options, path, overrides)
