"""The options of `train.py`, declared once as frozen blocks (see `options/train_demo.yml`, and
the reference's `config/daclip-sde/options/train.yml`, which loads unchanged):

    name, seed, device, gpu_ids, experiments_root, fit_target, use_tb_logger,
    daclip_config, daclip_precision, model, distortion     top-level keys
    sde          IR-SDE settings (max_sigma, T, schedule, eps)
    degradation  the reference's block, kept for compatibility (training reads none of it)
    network_G    which_model_G + setting (checked against the network's constructor)
    path         pretrain_model_G / strict_load (fine-tuning), resume_state, daclip
    datasets     train (mode MD: <dataroot>/<task>/{LQ,GT}; memory: <dataroot>/train/<task>/...)
                 and val (restored with a sampler; the best checkpoint by PSNR)
    train        optimizer, learning-rate schedule, loss, EMA
    logger       print / validation / checkpoint frequencies

The reference's names are accepted beside the project's: train.lr_G (lr), train.weight
(loss_weight), train.weight_decay_G (weight_decay), train.manual_seed (seed), train.val_freq
(logger.val_freq); giving both names of one setting with different values is an error.
Every error is a ValueError that names the key and says what is valid.
"""
from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from uir.common.checks import (
    boolean, check_int, choice, device_name, file_path, integer, names, number, optional, text,
)
from uir.common.declared import Block, option, read
from uir.data.demo import MAX_SIZE
from uir.options.loader import load_with
from uir.options.blocks import DegradationOptions, NetworkOptions
from uir.options.restorer import DACLIP_PRECISIONS, DEFAULT_DACLIP_CONFIG, daclip_model_config
from uir.options.schema import MODELS
from uir.runtime import gpu_id_list
from uir.samplers import SAMPLERS, build_sampler
from uir.samplers.options import SamplerBlock, SamplerOptions, sampler_block
from uir.sde.irsde import IRSDE
from uir.sde.predictions import FIT_TARGETS
from uir.sde.settings import IRSDESettings
from uir.training.init import NETWORK_INITS
from uir.training.losses import LOSS_TYPES

OPTIMIZERS = ("Adam", "AdamW", "Lion")
REFERENCE_LR_SCHEMES = ("TrueCosineAnnealingLR", "MultiStepLR")
LR_SCHEMES = ("cosine", "multistep", "constant", *REFERENCE_LR_SCHEMES)
DATA_MODES = ("memory", "MD")
COLORS = ("RGB",)
LION_PACKAGE = "lion-pytorch"
DEFAULT_SEED = 0
DEFAULT_VAL_FREQ = 1000
# The reference validates on its first 100 validation images, taken task by task in turn: 10 per
# task for its ten tasks. MD validation takes this many per task unless max_images_per_task says.
MD_VAL_IMAGES_PER_TASK = 10
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


def _weights(key: str, value: Any) -> tuple[float, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key}: expected a list of numbers, got {value!r}")
    return tuple(number(0, open_low=True)(f"{key}[{i}]", w) for i, w in enumerate(value))


@dataclass(frozen=True)
class InitSettings(Block):
    """`path:` weights to start from (fine-tuning), a training state to resume, and DA-CLIP."""

    section = "path"

    pretrain_model_G: str | None = option(None, check=file_path)
    strict_load: bool = option(True, check=boolean, null_is_default=True)
    resume_state: str | None = option(None, check=file_path,
                                      help="a training state to continue (ours, or the reference's <iter>.state)")
    daclip: str | None = option(None, check=file_path, help="daclip_ViT-B-32.pt, for a network that reads contexts")


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


@dataclass(frozen=True, kw_only=True)
class TrainDataSettings(Block):
    """`datasets.train:` random `patch_size` crops, the same window of LQ and GT, with flips and
    rotations. mode `MD` (the reference's): <dataroot>/<task>/{LQ,GT}, read from disk by
    `n_workers` loader processes, each task drawn equally often; mode `memory`:
    <dataroot>/train/<task>/{LQ,GT} held in memory, pairs drawn uniformly (the demo's).
    `batch_size` is the batch of one step over all processes, as in the reference."""

    name: str | None = option(None, check=text, help="a label, as in the reference")
    mode: str = option("memory", check=choice(DATA_MODES))
    dataroot: str = option(check=_required_path, missing="point it at the folder holding the task folders")
    tasks: tuple[str, ...] | None = option(None, check=optional(names()),
                                           help="task folders (default: distortion, as in the reference)")
    patch_size: int = option(64, check=integer(minimum=8))
    batch_size: int = option(16, check=integer(minimum=1))
    use_flip: bool = option(True, check=boolean, help="random horizontal flips")
    use_rot: bool = option(True, check=boolean, help="random vertical flips and transpositions (as the reference)")
    use_shuffle: bool = option(True, check=boolean, help="accepted for the reference's files; batches are always random")
    n_workers: int = option(0, check=integer(minimum=0, maximum=256), help="data loading processes per process")
    color: str | None = option("RGB", check=optional(choice(COLORS)))
    make_demo: DemoDataSettings | None = option(None, block=DemoDataSettings, help="build the demo set when missing")


@dataclass(frozen=True)
class ValSettings(Block):
    """`datasets.val:` restoring each task's validation images with one sampler; the mean PSNR
    picks the best checkpoint. `dataroot`, `tasks` and `mode` default to the training ones (mode
    memory reads <dataroot>/test/<task>, MD <dataroot>/<task>)."""

    name: str | None = option(None, check=text)
    mode: str | None = option(None, check=optional(choice(DATA_MODES)))
    dataroot: str | None = option(None, check=file_path)
    tasks: tuple[str, ...] | None = option(None, check=optional(names()))
    max_images_per_task: int | None = option(None, check=optional(integer(minimum=1)),
                                             help=f"default: all (memory), {MD_VAL_IMAGES_PER_TASK} (MD)")
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

    def resolved(self, distortion: tuple[str, ...] | None) -> TrainDatasets:
        """With the tasks (from `distortion` when not listed), and val's defaults filled in."""
        t, v = self.train, self.val
        tasks = t.tasks or distortion
        if not tasks:
            raise ValueError("datasets.train.tasks: not set; list the task folders (or set distortion, "
                             "as the reference's options do)")
        mode = v.mode or t.mode
        if v.dataroot is None and mode == "MD" and t.mode == "MD":
            raise ValueError("datasets.val.dataroot: not set; mode MD reads the validation images from "
                             "<dataroot>/<task>/{LQ,GT}: point it at that folder")
        per_task = v.max_images_per_task or (MD_VAL_IMAGES_PER_TASK if mode == "MD" else None)
        return replace(self, train=replace(t, tasks=tasks),
                       val=replace(v, mode=mode, dataroot=v.dataroot or t.dataroot, tasks=v.tasks or tasks,
                                   max_images_per_task=per_task))


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
    """`train:` optimizer, learning rate schedule (per step; see uir/training/schedule.py), weight
    initialisation, loss and EMA."""

    niter: int = option(check=integer(minimum=1), missing="the number of training steps")
    optimizer: str = option("AdamW", check=choice(OPTIMIZERS), help=f"Lion needs the {LION_PACKAGE} package")
    lr: float = option(2e-4, check=number(0, open_low=True), alias="lr_G")
    beta1: float = option(0.9, check=number(0, 1, open_high=True))
    beta2: float = option(0.99, check=number(0, 1, open_high=True))
    weight_decay: float = option(0.0, check=number(0), alias="weight_decay_G")
    lr_scheme: str = option("cosine", check=choice(LR_SCHEMES))
    warmup_iter: int = option(0, check=integer(minimum=-1), help="-1 or 0: no warm-up")
    eta_min: float = option(1e-6, check=number(0))
    lr_steps: tuple[int, ...] = option((), check=_steps)
    lr_gamma: float = option(0.5, check=number(0, open_low=True),
                             help="multistep's factor (the reference's MultiStepLR always halves)")
    restarts: tuple[int, ...] = option((), check=_steps, help="MultiStepLR: steps where lr goes back up")
    restart_weights: tuple[float, ...] = option((), check=_weights, help="MultiStepLR: lr x weight at each restart")
    clear_state: bool = option(False, check=boolean, help="MultiStepLR: empty the optimizer's state at restarts")
    grad_clip_norm: float | None = option(None, check=optional(number(0, open_low=True)),
                                          help="clip the gradient norm (~: no clipping)")
    init: str = option("default", check=choice(NETWORK_INITS))
    loss_type: str = option("l1", check=choice(LOSS_TYPES))
    loss_weight: float = option(1.0, check=number(0, open_low=True), alias="weight")
    is_weighted: bool = option(False, check=boolean, help="accepted: the reference's loss is never given weights")
    manual_seed: int | None = option(None, check=optional(integer(minimum=0)), help="the reference's place for seed")
    val_freq: int | None = option(None, check=optional(integer(minimum=1)),
                                  help="the reference's place for logger.val_freq")
    ema: EMASettings = option(block=EMASettings)
    deterministic: bool = option(True, check=boolean,
                                 help="CUDA: reproducible cuDNN algorithms; false lets cuDNN pick the fastest")

    def __post_init__(self) -> None:
        if self.optimizer == "Lion" and importlib.util.find_spec("lion_pytorch") is None:
            raise ValueError(f"train.optimizer: Lion needs the {LION_PACKAGE} package (pip install {LION_PACKAGE}), "
                             f"whose update is the reference's Lion; or use Adam or AdamW")
        if len(self.restarts) != len(self.restart_weights):
            raise ValueError(f"train.restart_weights: {len(self.restart_weights)} weight(s) for {len(self.restarts)} "
                             f"restart(s) in train.restarts; give one weight per restart")
        if self.restarts and self.lr_scheme != "MultiStepLR":
            raise ValueError(f"train.restarts: only lr_scheme MultiStepLR restarts (got {self.lr_scheme!r}); "
                             f"remove restarts or use MultiStepLR")


@dataclass(frozen=True)
class LoggerSettings(Block):
    """`logger:` how often (in steps) to log the loss, validate, and save checkpoints."""

    print_freq: int = option(100, check=integer(minimum=1))
    val_freq: int | None = option(None, check=optional(integer(minimum=1)), help=f"default {DEFAULT_VAL_FREQ}")
    save_checkpoint_freq: int = option(1000, check=integer(minimum=1))


def _one_setting(name_a: str, a: Any, name_b: str, b: Any, default: Any) -> Any:
    """The value of a setting that may be written in two places; both, differing, is an error."""
    if a is not None and b is not None and a != b:
        raise ValueError(f"{name_a} and {name_b}: both set ({a!r}, {b!r}); they are one setting: give one")
    return next((v for v in (a, b) if v is not None), default)


@dataclass(frozen=True, kw_only=True)
class TrainOptions(Block):
    name: str = option(check=_experiment_name, missing="the experiment's folder name")
    seed: int | None = option(None, check=optional(integer(minimum=0)), help=f"default {DEFAULT_SEED}")
    device: str = option("auto", check=device_name, help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)")
    gpu_ids: tuple[int, ...] = option((0,), check=gpu_id_list, help="the reference's key: device: auto uses gpu_ids[0]")
    experiments_root: str = option("experiments", check=_required_path)
    fit_target: str = option("noise", check=choice(FIT_TARGETS), help="what the network learns to predict")
    use_tb_logger: bool = option(False, check=boolean, help="TensorBoard events in <experiment>/tb_logger")
    model: str = option("denoising", check=choice(MODELS))
    distortion: tuple[str, ...] | None = option(None, check=optional(names()), help="the tasks (the reference's key)")
    daclip_config: str | dict[str, Any] = option(DEFAULT_DACLIP_CONFIG, check=daclip_model_config)
    daclip_precision: str = option("auto", check=choice(DACLIP_PRECISIONS),
                                   help="auto: fp16 autocast on CUDA, fp32 on the CPU (the reference's)")
    sde: IRSDESettings = option(block=IRSDESettings)
    degradation: DegradationOptions = option(block=DegradationOptions)
    network_G: NetworkOptions = option(block=NetworkOptions, missing="give which_model_G and setting")
    path: InitSettings = option(block=InitSettings)
    datasets: TrainDatasets = option(block=TrainDatasets, missing="it names the training data (datasets.train)")
    train: OptimSettings = option(block=OptimSettings, missing="the optimizer block (train.niter at least)")
    logger: LoggerSettings = option(block=LoggerSettings)

    def __post_init__(self) -> None:
        seed = _one_setting("seed", self.seed, "train.manual_seed", self.train.manual_seed, DEFAULT_SEED)
        val_freq = _one_setting("logger.val_freq", self.logger.val_freq, "train.val_freq", self.train.val_freq,
                                DEFAULT_VAL_FREQ)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "train", replace(self.train, manual_seed=None, val_freq=None))
        object.__setattr__(self, "logger", replace(self.logger, val_freq=val_freq))
        object.__setattr__(self, "datasets", self.datasets.resolved(self.distortion))
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

    def notes(self) -> list[str]:
        """Settings that load (as in the reference) but do not do what their name says there either."""
        t, out = self.train, []
        if t.lr_scheme == "MultiStepLR" and t.lr_gamma != 0.5:
            out.append(f"train.lr_gamma: {t.lr_gamma} is not used: the reference's MultiStepLR halves the rate at each "
                       f"of lr_steps whatever lr_gamma says (lr_scheme: multistep multiplies by lr_gamma)")
        if t.lr_scheme in REFERENCE_LR_SCHEMES and t.warmup_iter >= 2:
            w = t.warmup_iter
            out.append(f"train.warmup_iter: {w} with {t.lr_scheme} warms up as the reference does: the first step at "
                       f"the full lr, then lr x (step - 1) / {w}, and the schedule goes on from lr x {w - 1}/{w} "
                       f"(lr_scheme: cosine or multistep warm up linearly to lr)")
        if t.is_weighted:
            out.append("train.is_weighted: true changes nothing: the reference's matching loss is never given weights")
        if not self.datasets.train.use_shuffle:
            out.append("datasets.train.use_shuffle: false changes nothing: the reference's loader shuffles whatever it "
                       "says, and every item here is drawn at random")
        return out

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
