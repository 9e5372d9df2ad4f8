"""The options of `test.py`, declared once (keys, defaults, checks, help) as frozen blocks.

An options file holds the reference's keys (``name, suffix, model, distortion, gpu_ids,
sde, degradation, datasets, network_G, path, sampler`` and ``crop_border``) plus keys of
our own that control the run (device, batching, precision, outputs, sweep). `parse_options`
turns the raw YAML mapping into an `EvalOptions`; nothing downstream reads raw dicts.
Every error is a `ValueError` that names the key and says what is valid.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from uir.common.checks import (
    boolean, check_int, choice, folder_name, integer, label_text, names, number, optional, file_path, text, unique,
)
from uir.common.declared import Block, keys_of, option, read
from uir.models.networks import network_arguments
from uir.runtime import RuntimeSettings
from uir.samplers.config import SamplerConfig
from uir.samplers.registry import SAMPLERS
from uir.sde.settings import IRSDESettings
from uir.tiling import TileSettings

DACLIP_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DATASET_MODES = ("LQGT", "LQ")
MODELS = ("denoising",)
DEFAULT_DACLIP_CONFIG = "ViT-B-32"
# Image i of a task is seeded with seed + i, and torch's generators take seeds below 2^64.
MAX_SEED = 2**63 - 1
# `fast: true` (test.py --fast), per device type: the settings that keep issue 17's quality bar
# (docs/benchmarks.md, "Precision policy"). A key the options set explicitly keeps its value. On
# the CPU nothing pays: fp16-mixed runs slower than fp32 there (bf16-mixed, faster, misses the
# bar), batches are 1, and compiling takes minutes.
FAST_SETTINGS = {
    "cuda": {"batch_size": "auto", "precision": "fp16-mixed", "channels_last": True, "compile": True},
    "cpu": {},
}
# The reference's ten tasks (DA-CLIP's degradation types), in its order.
REFERENCE_TASKS = (
    "motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy",
    "raindrop", "rainy", "shadowed", "snowy", "uncompleted",
)


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {value!r}")
    return copy.deepcopy(dict(value))


def _suffix(key: str, value: Any) -> str | None:
    out = text(key, value)
    if out is not None and ("/" in out or "\\" in out):
        raise ValueError(f"{key}: must not contain slashes, got {out!r}")
    return out


def _nfe_list(key: str, value: Any) -> tuple[int, ...]:
    """One NFE or a list of distinct NFEs."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{key}: the list is empty")
    return unique(key, tuple(check_int(key, n, minimum=1) for n in items))


def _batch_size(key: str, value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        raise ValueError(f"{key}: expected a positive integer or 'auto', got {value!r}")
    return check_int(key, value, minimum=1)


def _daclip_config(key: str, value: Any) -> str | dict[str, Any]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    raise ValueError(
        f"{key}: expected an open_clip model name (e.g. {DEFAULT_DACLIP_CONFIG!r}) or a model "
        f"config mapping (embed_dim, vision_cfg, text_cfg), got {value!r}"
    )


def _resume(key: str, value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    return file_path(key, value) or False


def _results_root(key: str, value: Any) -> str:
    return file_path(key, value) or "results"


def _sampler_overrides(key: str, value: Any) -> dict[str, Any]:
    """A `set:` block of sampler keys, each checked as in `sampler:`; the NFE comes from `nfe`."""
    given = _mapping(key, value)
    if "num_sample_steps" in given:
        raise ValueError(f"{key}.num_sample_steps: set the steps with the run's nfe instead")
    checked = SamplerConfig.from_dict(given, key)
    return {k: getattr(checked, k) for k in given}


# ---- the reference's sections ---------------------------------------------------------------


@dataclass(frozen=True)
class SDEOptions(IRSDESettings):
    """test.py's `sde:` block: the IR-SDE and the sampler name."""

    algorithm: str = option("mrsampler", check=choice(SAMPLERS), help="the sampler (see the README's table)")


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
    setting: dict[str, Any] = option(factory=dict, check=_mapping)

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


# ---- our own sections -----------------------------------------------------------------------


@dataclass(frozen=True)
class SweepEntry:
    """One point of the sweep: a sampler at one NFE, with its label and `sampler:` overrides."""

    sampler: str
    nfe: int
    label: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()  # (sampler key, value) pairs, sorted

    @property
    def name(self) -> str:
        """The label, or the sampler's name: how tables and logs call this point."""
        return self.label or self.sampler

    @property
    def folder(self) -> str:
        """`<label or sampler>_nfe<N>`, the label's characters outside [A-Za-z0-9._-] as `_`."""
        return f"{re.sub(r'[^A-Za-z0-9._-]', '_', self.name)}_nfe{self.nfe}"


@dataclass(frozen=True)
class RunSpec(Block):
    """One entry of `sweep.runs`: `{sampler: NAME, nfe: N or [N, ...], label: TEXT, set: {sampler keys}}`."""

    sampler: str = option(check=choice(SAMPLERS), missing="the sampler of this run")
    nfe: tuple[int, ...] = option(check=_nfe_list, missing="the NFE (or a list of NFEs) of this run")
    label: str | None = option(None, check=label_text, help="its name in tables, folders and plots (default: the sampler)")
    set: dict[str, Any] = option(factory=dict, check=_sampler_overrides, help="sampler: keys that differ for this run")


@dataclass(frozen=True)
class SweepOptions(Block):
    """`sweep:` what to evaluate: `samplers` x `nfe` (default: `sde.algorithm` x
    `sampler.num_sample_steps`), or `runs`, a list of samplers each with its own NFEs, label and
    `sampler:` overrides (the command line's --sampler / --nfe replace parts of `runs`)."""

    section = "sweep"

    samplers: tuple[str, ...] | None = option(None, check=optional(names(item=choice(SAMPLERS))), flag="--sampler")
    nfe: tuple[int, ...] | None = option(None, check=optional(_nfe_list), flag="--nfe")
    runs: tuple[RunSpec, ...] | None = option(None, items=RunSpec)

    def __post_init__(self) -> None:
        if self.runs is None:
            return
        if self.samplers is not None or self.nfe is not None:
            raise ValueError("sweep.runs: give either runs or samplers/nfe, not both")
        if not self.runs:
            raise ValueError("sweep.runs: expected a non-empty list of {sampler: NAME, nfe: N}, got []")
        points = [SweepEntry(r.sampler, n, r.label) for r in self.runs for n in r.nfe]
        folders = [p.folder for p in points]
        if len(set(folders)) != len(folders):
            twice = sorted({f for f in folders if folders.count(f) > 1})
            raise ValueError(f"sweep.runs: a (label or sampler, nfe) pair is listed twice: {', '.join(twice)}")


@dataclass(frozen=True)
class EvalOptions(Block):
    """Everything `test.py` needs, validated. Build it with `parse_options(raw)`."""

    network_G: NetworkOptions = option(block=NetworkOptions, missing="it names the network (which_model_G) and its setting")
    name: str = option("universal-ir", check=folder_name, help="the run folder's name")
    suffix: str | None = option(None, check=_suffix, help="added to every restored image's file name")
    model: str = option("denoising", check=choice(MODELS))
    distortion: tuple[str, ...] = option(REFERENCE_TASKS, check=names(item=folder_name),
                                         help="the tasks under data_root when --dataset is not given")
    sde: SDEOptions = option(block=SDEOptions)
    degradation: DegradationOptions = option(block=DegradationOptions)
    datasets: tuple[DatasetOptions, ...] = option((), items=DatasetOptions, keyed="key")
    path: PathOptions = option(block=PathOptions)
    sampler: SamplerConfig = option(block=SamplerConfig)
    crop_border: int | None = option(None, check=optional(integer(minimum=0)),
                                     help="pixels cropped at each border for PSNR/SSIM (unset: degradation.scale)")
    # -- the run (ours) --
    seed: int = option(0, check=integer(minimum=0, maximum=MAX_SEED), help="image i of a task uses seed + i")
    runtime: RuntimeSettings = option(block=RuntimeSettings, flatten=True)
    fast: bool = option(False, check=boolean, help="the fast settings (FAST_SETTINGS) for keys not set")
    batch_size: int | str = option("auto", check=_batch_size,
                                   help="images per batch (same size only); auto: from free GPU memory, 1 on the CPU")
    num_workers: int = option(2, check=integer(minimum=0, maximum=256), help="data loading worker processes")
    metrics: bool = option(True, check=boolean, help="compute PSNR/SSIM/LPIPS against GT")
    lpips: bool = option(True, check=boolean, help="compute LPIPS (AlexNet's weights: cached, downloaded or lpips_weights)")
    lpips_weights: str | None = option(None, check=file_path, help="a local alexnet-owt-7be5be79.pth for LPIPS")
    fid: bool = option(True, check=boolean, help="compute FID against the GT folder (pytorch-fid's Inception)")
    fid_weights: str | None = option(None, check=file_path,
                                     help="a local pt_inception-2015-12-05-6726825d.pth for FID")
    data_root: str | None = option(None, check=file_path, help="folder holding <task>/{LQ,GT}")
    tasks: tuple[str, ...] | None = option(None, check=optional(names(item=folder_name)), flag="--dataset")
    results_root: str = option("results", check=_results_root, help="where run folders are created")
    max_images: int | None = option(None, check=optional(integer(minimum=1)), help="first N images of each task")
    save_images: bool = option(True, check=boolean, help="write the restored PNGs")
    daclip_config: str | dict[str, Any] = option(DEFAULT_DACLIP_CONFIG, check=_daclip_config)
    daclip_precision: str = option("auto", check=choice(DACLIP_PRECISIONS),
                                   help="auto: fp16 autocast on CUDA, fp32 on the CPU (the reference's)")
    overwrite: bool = option(False, check=boolean, help="replace the run folder <name>")
    resume: bool | str = option(False, check=_resume, help="continue the newest run folder of this name, or RUN_DIR")
    sweep: SweepOptions = option(block=SweepOptions)
    tile: TileSettings | None = option(None, block=TileSettings,
                                       help="evaluate the network on overlapping tiles (images larger than memory)")

    def __post_init__(self) -> None:
        unique("datasets.*.name", tuple(d.name for d in self.datasets))
        if self.overwrite and self.resume:
            raise ValueError("overwrite and resume: choose one (--overwrite replaces a run folder, --resume continues it)")
        if self.tasks is not None and self.data_root is None:
            raise ValueError(
                "tasks (--dataset): task names need a data root holding ROOT/<task>/{LQ,GT}; "
                "set data_root in the options file or pass --data-root"
            )
        if self.data_root is None and not self.datasets:
            raise ValueError(
                "datasets: no test set; add a datasets.test1 block (name, mode, dataroot_GT, dataroot_LQ) "
                "or set data_root (--data-root) to evaluate ROOT/<task>/{LQ,GT} for the tasks in distortion"
            )

    @property
    def effective_crop_border(self) -> int:
        """`crop_border`, or `degradation.scale` when it is unset, as in the reference (which
        also falls back when it is 0; here an explicit 0 means no crop)."""
        return self.degradation.scale if self.crop_border is None else self.crop_border

    @property
    def runs(self) -> tuple[SweepEntry, ...]:
        """Every point of the sweep, in order."""
        sweep = self.sweep
        if sweep.runs is not None:
            return tuple(SweepEntry(r.sampler, n, r.label, tuple(sorted(r.set.items()))) for r in sweep.runs for n in r.nfe)
        samplers = sweep.samplers or (self.sde.algorithm,)
        nfes = sweep.nfe or (self.sampler.num_sample_steps,)
        return tuple(SweepEntry(s, n) for s in samplers for n in nfes)

    def sampler_config(self, entry: SweepEntry) -> SamplerConfig:
        """The `sampler:` block for one point of the sweep: its NFE and overrides applied."""
        return self.sampler.with_overrides(num_sample_steps=entry.nfe, **dict(entry.overrides))


# Every top-level key an options file may hold.
TOP_LEVEL_KEYS = tuple(keys_of(EvalOptions))


def parse_options(raw: Mapping[str, Any]) -> EvalOptions:
    """Validate a raw options mapping (YAML with overrides applied) into `EvalOptions`."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"options: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return read(EvalOptions, with_fast_settings(raw))


def with_fast_settings(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """With `fast: true`, `FAST_SETTINGS` for the device's type under every key `raw` does not set."""
    if raw.get("fast") is not True:
        return raw
    device = str(raw.get("device") or "auto")
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return {**FAST_SETTINGS["cuda" if cuda else "cpu"], **raw}
