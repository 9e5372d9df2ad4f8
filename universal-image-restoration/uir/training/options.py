"""The options of `train.py`, validated once into frozen dataclasses.

An options file (see `options/train_demo.yml`) has the sections

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
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from uir.options.loader import load_with
from uir.options.schema import IRSDESettings, NetworkOptions
from uir.options.validation import (
    check_bool,
    check_choice,
    check_device,
    check_float,
    check_int,
    check_keys,
    section,
)
from uir.samplers.config import SamplerConfig
from uir.samplers.registry import SAMPLERS
from uir.sde.predictions import FIT_TARGETS
from uir.training.init import NETWORK_INITS
from uir.training.losses import LOSS_TYPES

OPTIMIZERS = ("Adam", "AdamW")
LR_SCHEMES = ("cosine", "multistep", "constant")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _fields(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def _path(key: str, value: Any, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a folder or file path, got {value!r}")
    return os.path.expanduser(value)


def _tasks(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"{key}: expected a non-empty list of task names, got {value!r}")
    duplicates = sorted({t for t in items if items.count(t) > 1})
    if duplicates:
        raise ValueError(f"{key}: {duplicates} appear more than once")
    return tuple(items)


@dataclass(frozen=True)
class InitSettings:
    """`path:` optional weights to start from (fine-tuning)."""

    pretrain_model_G: str | None = None
    strict_load: bool = True

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "InitSettings":
        check_keys("path", block, _fields(cls))
        d = replace(cls(), **block)
        return cls(_path("path.pretrain_model_G", d.pretrain_model_G, optional=True),
                   check_bool("path.strict_load", d.strict_load))


@dataclass(frozen=True)
class DemoDataSettings:
    """`datasets.train.make_demo:` arguments of `uir.data.demo.make_demo_dataset`, used to build
    the data root when it does not exist."""

    seed: int = 0
    test_size: int = 128
    n_test_per_task: int = 3
    n_train_per_task: int = 48
    train_size: int = 128
    train_dark_fraction: float = 0.0
    workers: int = 1  # processes that write the set (the same files for any number)

    @classmethod
    def from_dict(cls, block: Mapping[str, Any], where: str) -> "DemoDataSettings":
        check_keys(where, block, _fields(cls))
        d = replace(cls(), **block)
        ints = {f: check_int(f"{where}.{f}", getattr(d, f), minimum=1 if f == "workers" else 0)
                for f in _fields(cls) if f != "train_dark_fraction"}
        dark = check_float(f"{where}.train_dark_fraction", d.train_dark_fraction)
        if not 0.0 <= dark <= 1.0:
            raise ValueError(f"{where}.train_dark_fraction: must lie in [0, 1], got {dark!r}")
        return cls(**ints, train_dark_fraction=dark)


@dataclass(frozen=True)
class TrainDataSettings:
    """`datasets.train:` random `patch_size` crops of ROOT/train/<task>/{LQ,GT}, all tasks mixed."""

    dataroot: str
    tasks: tuple[str, ...]
    patch_size: int = 64
    batch_size: int = 16
    use_flip: bool = True
    use_rot: bool = True
    make_demo: DemoDataSettings | None = None

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "TrainDataSettings":
        w = "datasets.train"
        check_keys(w, block, _fields(cls))
        if "dataroot" not in block:
            raise ValueError(f"{w}.dataroot: not set; point it at a folder holding train/<task>/{{LQ,GT}}")
        if "tasks" not in block:
            raise ValueError(f"{w}.tasks: not set; list the task folders under {w}.dataroot/train")
        demo = block.get("make_demo")
        if demo is not None and not isinstance(demo, Mapping):
            raise ValueError(f"{w}.make_demo: expected a mapping of make_demo_dataset arguments or ~, got {demo!r}")
        return cls(
            dataroot=_path(f"{w}.dataroot", block["dataroot"]),
            tasks=_tasks(f"{w}.tasks", block["tasks"]),
            patch_size=check_int(f"{w}.patch_size", block.get("patch_size", cls.patch_size), minimum=8),
            batch_size=check_int(f"{w}.batch_size", block.get("batch_size", cls.batch_size), minimum=1),
            use_flip=check_bool(f"{w}.use_flip", block.get("use_flip", cls.use_flip)),
            use_rot=check_bool(f"{w}.use_rot", block.get("use_rot", cls.use_rot)),
            make_demo=None if demo is None else DemoDataSettings.from_dict(demo, f"{w}.make_demo"),
        )


@dataclass(frozen=True)
class ValSettings:
    """`datasets.val:` restoring ROOT/test/<task>/{LQ,GT} with one sampler; the mean PSNR picks
    the best checkpoint. `dataroot` and `tasks` default to the training ones."""

    dataroot: str
    tasks: tuple[str, ...]
    max_images_per_task: int | None = None
    sampler: str = "mrsampler"
    sampler_options: SamplerConfig = field(default_factory=SamplerConfig)
    batch_size: int = 8
    crop_border: int = 0
    seed: int = 0

    @classmethod
    def from_dict(cls, block: Mapping[str, Any], train: TrainDataSettings, fit_target: str) -> "ValSettings":
        w = "datasets.val"
        check_keys(w, block, _fields(cls))
        sampler = check_choice(f"{w}.sampler", block.get("sampler", cls.sampler), SAMPLERS)
        raw_sampler = block.get("sampler_options") or {}
        if not isinstance(raw_sampler, Mapping):
            raise ValueError(f"{w}.sampler_options: expected a mapping (a test.py `sampler:` block), got {raw_sampler!r}")
        given_target = raw_sampler.get("fit_target", fit_target)
        if given_target != fit_target:
            raise ValueError(
                f"{w}.sampler_options.fit_target: {given_target!r} differs from fit_target {fit_target!r}; "
                f"the validation sampler must read the network as it is trained (leave the key out)"
            )
        config = SamplerConfig.from_dict({**raw_sampler, "fit_target": fit_target}, f"{w}.sampler_options")
        max_images = block.get("max_images_per_task")
        return cls(
            dataroot=_path(f"{w}.dataroot", block.get("dataroot", train.dataroot)),
            tasks=_tasks(f"{w}.tasks", block.get("tasks") or train.tasks),
            max_images_per_task=None if max_images is None
            else check_int(f"{w}.max_images_per_task", max_images, minimum=1),
            sampler=sampler,
            sampler_options=config,
            batch_size=check_int(f"{w}.batch_size", block.get("batch_size", cls.batch_size), minimum=1),
            crop_border=check_int(f"{w}.crop_border", block.get("crop_border", cls.crop_border), minimum=0),
            seed=check_int(f"{w}.seed", block.get("seed", cls.seed), minimum=0),
        )


@dataclass(frozen=True)
class EMASettings:
    """`train.ema:` exponential moving average of the weights (the saved model), with the warm-up
    of ema_pytorch that the reference uses: decay = min(beta, 1 - (1 + k / inv_gamma) ** -power),
    k = updates after `update_after_step`; before that the average is a copy of the weights."""

    beta: float = 0.995
    update_every: int = 10
    update_after_step: int = 100
    inv_gamma: float = 1.0
    power: float = 2 / 3

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "EMASettings":
        w = "train.ema"
        check_keys(w, block, _fields(cls))
        d = replace(cls(), **block)
        beta = check_float(f"{w}.beta", d.beta)
        if not 0 <= beta < 1:
            raise ValueError(f"{w}.beta: must lie in [0, 1), got {beta}")
        inv_gamma, power = check_float(f"{w}.inv_gamma", d.inv_gamma), check_float(f"{w}.power", d.power)
        if inv_gamma <= 0 or power <= 0:
            raise ValueError(f"{w}.inv_gamma and {w}.power: must be positive, got {inv_gamma} and {power}")
        return cls(beta, check_int(f"{w}.update_every", d.update_every, minimum=1),
                   check_int(f"{w}.update_after_step", d.update_after_step, minimum=0), inv_gamma, power)


@dataclass(frozen=True)
class OptimSettings:
    """`train:` optimizer, learning rate schedule (per step), weight initialisation, loss and EMA."""

    niter: int
    optimizer: str = "AdamW"
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.0
    lr_scheme: str = "cosine"
    warmup_iter: int = 0
    eta_min: float = 1e-6
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.5
    grad_clip_norm: float | None = None
    init: str = "default"
    loss_type: str = "l1"
    loss_weight: float = 1.0
    ema: EMASettings = field(default_factory=EMASettings)
    deterministic: bool = True  # CUDA: reproducible cuDNN algorithms; false lets cuDNN pick the fastest

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "OptimSettings":
        w = "train"
        check_keys(w, block, _fields(cls))
        if "niter" not in block:
            raise ValueError(f"{w}.niter: not set; the number of training steps")
        k = lambda name: f"{w}.{name}"  # noqa: E731
        get = lambda name: block.get(name, getattr(cls, name, None))  # noqa: E731
        steps = get("lr_steps") or ()
        if not isinstance(steps, (list, tuple)):
            raise ValueError(f"{k('lr_steps')}: expected a list of step numbers, got {steps!r}")
        clip = get("grad_clip_norm")
        values = dict(
            niter=check_int(k("niter"), block["niter"], minimum=1),
            optimizer=check_choice(k("optimizer"), get("optimizer"), OPTIMIZERS),
            lr=check_float(k("lr"), get("lr")),
            beta1=check_float(k("beta1"), get("beta1")),
            beta2=check_float(k("beta2"), get("beta2")),
            weight_decay=check_float(k("weight_decay"), get("weight_decay")),
            lr_scheme=check_choice(k("lr_scheme"), get("lr_scheme"), LR_SCHEMES),
            warmup_iter=check_int(k("warmup_iter"), get("warmup_iter"), minimum=0),
            eta_min=check_float(k("eta_min"), get("eta_min")),
            lr_steps=tuple(check_int(f"{k('lr_steps')}[{i}]", s, minimum=1) for i, s in enumerate(steps)),
            lr_gamma=check_float(k("lr_gamma"), get("lr_gamma")),
            grad_clip_norm=None if clip is None else check_float(k("grad_clip_norm"), clip),
            init=check_choice(k("init"), get("init"), NETWORK_INITS),
            loss_type=check_choice(k("loss_type"), get("loss_type"), LOSS_TYPES),
            loss_weight=check_float(k("loss_weight"), get("loss_weight")),
            ema=EMASettings.from_dict(section(block, "ema", "train.")),
            deterministic=check_bool(k("deterministic"), get("deterministic")),
        )
        if values["lr"] <= 0:
            raise ValueError(f"{k('lr')}: must be positive, got {values['lr']}")
        for name in ("beta1", "beta2"):
            if not 0 <= values[name] < 1:
                raise ValueError(f"{k(name)}: must lie in [0, 1), got {values[name]}")
        if values["grad_clip_norm"] is not None and values["grad_clip_norm"] <= 0:
            raise ValueError(f"{k('grad_clip_norm')}: must be positive or ~ (no clipping), got {clip}")
        return cls(**values)


@dataclass(frozen=True)
class LoggerSettings:
    """`logger:` how often (in steps) to log the loss, validate, and save the latest checkpoint."""

    print_freq: int = 100
    val_freq: int = 1000
    save_checkpoint_freq: int = 1000

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "LoggerSettings":
        check_keys("logger", block, _fields(cls))
        d = replace(cls(), **block)
        return cls(*(check_int(f"logger.{f}", getattr(d, f), minimum=1) for f in _fields(cls)))


@dataclass(frozen=True)
class TrainOptions:
    name: str
    sde: IRSDESettings
    network_G: NetworkOptions
    datasets_train: TrainDataSettings
    datasets_val: ValSettings
    train: OptimSettings
    logger: LoggerSettings = field(default_factory=LoggerSettings)
    path: InitSettings = field(default_factory=InitSettings)
    fit_target: str = "noise"
    seed: int = 0
    device: str = "auto"
    experiments_root: str = "experiments"

    @property
    def experiment_dir(self) -> str:
        return os.path.join(self.experiments_root, self.name)

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain YAML-able mapping, in the file's layout (defaults filled in)."""
        d = asdict(self)
        d["datasets"] = {"train": d.pop("datasets_train"), "val": d.pop("datasets_val")}
        return _plain(d)


TOP_LEVEL_KEYS = ("name", "seed", "device", "experiments_root", "fit_target",
                  "sde", "network_G", "path", "datasets", "train", "logger")


def parse_train_options(raw: Mapping[str, Any]) -> TrainOptions:
    """Validate a raw options mapping (as read from YAML) into `TrainOptions`."""
    check_keys("(top level)", raw, TOP_LEVEL_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(f"name: expected a folder name of letters, digits, '.', '_' or '-', got {name!r}")
    fit_target = check_choice("fit_target", raw.get("fit_target", "noise"), FIT_TARGETS)
    device = check_device("device", raw.get("device", "auto"))
    datasets = section(raw, "datasets")
    check_keys("datasets", datasets, ["train", "val"])
    if "train" not in datasets:
        raise ValueError("datasets.train: not set; it names the training data (dataroot, tasks, patch_size, ...)")
    train_data = TrainDataSettings.from_dict(section(datasets, "train", "datasets."))
    train = OptimSettings.from_dict(section(raw, "train"))
    if train.init == "noise_skip" and fit_target != "noise":
        raise ValueError(f"train.init: noise_skip starts the network as a noise predictor; it needs fit_target: noise "
                         f"(got {fit_target!r}); use init: default")
    if "network_G" not in raw:
        raise ValueError("network_G: not set; give which_model_G and setting")
    return TrainOptions(
        name=name,
        sde=IRSDESettings.from_dict(section(raw, "sde")),
        network_G=NetworkOptions.from_dict(section(raw, "network_G")),
        datasets_train=train_data,
        datasets_val=ValSettings.from_dict(section(datasets, "val", "datasets."), train_data, fit_target),
        train=train,
        logger=LoggerSettings.from_dict(section(raw, "logger")),
        path=InitSettings.from_dict(section(raw, "path")),
        fit_target=fit_target,
        seed=check_int("seed", raw.get("seed", 0), minimum=0),
        device=device,
        experiments_root=_path("experiments_root", raw.get("experiments_root", "experiments")),
    )


def load_train_options(path: str | os.PathLike, overrides: Iterable[tuple[str, Any]] = ()) -> TrainOptions:
    """train.py's options: read `path`, apply overrides, validate. Raises OptionsError."""
    return load_with(parse_train_options, path, overrides)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value
