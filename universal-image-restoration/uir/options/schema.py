"""The options of `test.py`, declared once (keys, defaults, checks, help) as frozen blocks.

An options file holds the reference's keys (``name, suffix, model, distortion, gpu_ids, sde,
degradation, datasets, network_G, path, sampler`` and ``crop_border``) plus keys of our own.
Every one of them sits at the top level of the file (or in its reference section), as before;
in Python they are grouped in blocks a reader can hold in mind:

    EvalOptions
      restorer  RestorerOptions   network, checkpoints, DA-CLIP, IR-SDE, sampler, device, seed, batching
      data      DataOptions       the test sets: datasets / data_root + tasks, max_images, workers
      scoring   MetricOptions     which metrics, their weights, crop_border
      outputs   OutputOptions     the run folder: name, results_root, suffix, overwrite / resume
      sweep     SweepOptions      which samplers at which NFEs
      trajectory TrajectoryOptions every step's state of chosen images (optional)

`parse_options` turns the raw YAML mapping into an `EvalOptions`; nothing downstream reads raw
dicts. Every error is a `ValueError` that names the key and says what is valid.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from uir.common.checks import (
    boolean, check_choice, check_keys, choice, file_path, folder_name, integer, names, optional, text, unique,
)
from uir.common.declared import Block, keys_of, option, read
from uir.metrics.registry import METRICS, default_metrics
from uir.options.blocks import REFERENCE_TASKS, DatasetOptions, DegradationOptions
from uir.options.restorer import RestorerOptions
from uir.options.sweep import SweepOptions, SweepPoint
from uir.options.trajectory import TrajectoryOptions
from uir.samplers.options import check_overrides
from uir.samplers.registry import SAMPLERS

MODELS = ("denoising",)


def _suffix(key: str, value: Any) -> str | None:
    out = text(key, value)
    if out is not None and ("/" in out or "\\" in out):
        raise ValueError(f"{key}: must not contain slashes, got {out!r}")
    return out


def _resume(key: str, value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    return file_path(key, value) or False


def _results_root(key: str, value: Any) -> str:
    return file_path(key, value) or "results"


def _metric_selection(key: str, value: Any) -> bool | tuple[str, ...]:
    """`true` (the reference's metrics), `false` (none) or a list of registered metric names."""
    if isinstance(value, bool):
        return value
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{key}: expected true, false or a list of metric names ({', '.join(METRICS)}), "
                         f"got {value!r}")
    return unique(key, tuple(check_choice(key, item, METRICS.names()) for item in items))


@dataclass(frozen=True)
class DataOptions(Block):
    """The test sets: `datasets` blocks (the reference's), or `data_root` with task names."""

    distortion: tuple[str, ...] = option(REFERENCE_TASKS, check=names(item=folder_name),
                                         help="the tasks under data_root when --dataset is not given")
    datasets: tuple[DatasetOptions, ...] = option((), items=DatasetOptions, keyed="key")
    data_root: str | None = option(None, check=file_path, flag="--data-root", metavar="DIR",
                                   help="folder holding one TASK/{LQ,GT} folder per task")
    tasks: tuple[str, ...] | None = option(None, check=optional(names(item=folder_name)), flag="--dataset",
                                           nargs="+", metavar="TASK",
                                           help="tasks to evaluate, read from DATA_ROOT/TASK/{LQ,GT}")
    max_images: int | None = option(None, check=optional(integer(minimum=1)), flag="--max-images", metavar="N",
                                    help="evaluate only the first N images of each task")
    num_workers: int = option(2, check=integer(minimum=0, maximum=256), flag="--num-workers", metavar="N",
                              help="data loading worker processes")

    def __post_init__(self) -> None:
        unique("datasets.*.name", tuple(d.name for d in self.datasets))
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


@dataclass(frozen=True)
class MetricOptions(Block):
    """Which metrics (`uir.metrics.METRICS`) score the restored images, and with what weights."""

    metrics: bool | tuple[str, ...] = option(True, check=_metric_selection, flag="--no-metrics",
                                             help="true: PSNR, SSIM, PSNR-Y, SSIM-Y, LPIPS, FID (the reference's); "
                                                  "false: only write restored images; or a list of metric names")
    lpips: bool = option(True, check=boolean, flag="--no-lpips",
                         help="LPIPS (AlexNet's weights: cached, downloaded or lpips_weights); --no-lpips skips it")
    lpips_weights: str | None = option(None, check=file_path, help="a local alexnet-owt-7be5be79.pth for LPIPS")
    fid: bool = option(True, check=boolean, flag="--no-fid",
                       help="FID against the GT folder (pytorch-fid's Inception); --no-fid skips it")
    fid_weights: str | None = option(None, check=file_path, help="a local pt_inception-2015-12-05-6726825d.pth for FID")
    crop_border: int | None = option(None, check=optional(integer(minimum=0)),
                                     help="pixels cropped at each border for PSNR/SSIM (unset: degradation.scale)")

    @property
    def selected(self) -> tuple[str, ...]:
        """The metrics of the run, in registry order: those `metrics` names (true: the reference's),
        less those their own switch turns off (`lpips: false`)."""
        chosen = default_metrics() if self.metrics is True else (self.metrics or ())
        return tuple(n for n in METRICS.names() if n in chosen
                     and (METRICS[n].switch is None or getattr(self, METRICS[n].switch, True)))

    def weights_file(self, name: str) -> str | None:
        """The local weights file the options name for metric `name` (its `weights` option)."""
        option_name = METRICS[name].weights
        return getattr(self, option_name, None) if option_name else None


@dataclass(frozen=True)
class OutputOptions(Block):
    """Where the run goes: `<results_root>/<name>[_N]/`, and what is written there."""

    name: str = option("universal-ir", check=folder_name, help="the run folder's name")
    suffix: str | None = option(None, check=_suffix, help="added to every restored image's file name")
    results_root: str = option("results", check=_results_root, flag="--results-root", metavar="DIR",
                               help="where run folders are created (default: results)")
    save_images: bool = option(True, check=boolean, help="write the restored PNGs")
    xlsx: bool = option(False, check=boolean, flag="--xlsx",
                        help="also write <task>.xlsx per task with the reference's columns (needs openpyxl)")
    overwrite: bool = option(False, check=boolean, flag="--overwrite", help="replace an existing run folder <name>")
    resume: bool | str = option(False, check=_resume, flag="--resume", nargs="?", metavar="RUN_DIR",
                                help="continue an interrupted run (the newest run folder of this name, or RUN_DIR)")

    def __post_init__(self) -> None:
        if self.overwrite and self.resume:
            raise ValueError("overwrite and resume: choose one (--overwrite replaces a run folder, --resume continues it)")


@dataclass(frozen=True)
class EvalOptions(Block):
    """Everything `test.py` needs, validated. Build it with `parse_options(raw)`."""

    model: str = option("denoising", check=choice(MODELS))
    degradation: DegradationOptions = option(block=DegradationOptions)
    restorer: RestorerOptions = option(block=RestorerOptions, flatten=True)
    data: DataOptions = option(block=DataOptions, flatten=True)
    scoring: MetricOptions = option(block=MetricOptions, flatten=True)
    outputs: OutputOptions = option(block=OutputOptions, flatten=True)
    sweep: SweepOptions = option(block=SweepOptions)
    trajectory: TrajectoryOptions | None = option(None, block=TrajectoryOptions,
                                                  help="keep every step's state of chosen images (trajectories/)")

    def __post_init__(self) -> None:
        points = self.points
        samplers = [SAMPLERS[n] for n in self.restorer.sampler_names(points)]
        object.__setattr__(self.restorer, "sampler", self.restorer.sampler.serving(samplers))
        for i, run in enumerate(self.sweep.runs or ()):
            check_overrides(SAMPLERS[run.sampler], run.set, f"sweep.runs[{i}].set")
        for point in points:
            try:
                self.restorer.sampler_options(point)
            except ValueError as exc:
                raise ValueError(f"sampler {point.name!r} with nfe {point.nfe}: {exc}") from None

    @property
    def points(self) -> tuple[SweepPoint, ...]:
        """Every point of the sweep, in order."""
        return self.sweep.points(self.restorer.sde.algorithm, self.restorer.sampler.num_sample_steps)

    @property
    def effective_crop_border(self) -> int:
        """`crop_border`, or `degradation.scale` when it is unset, as in the reference (which
        also falls back when it is 0; here an explicit 0 means no crop)."""
        crop = self.scoring.crop_border
        return self.degradation.scale if crop is None else crop

    def for_device(self, device: torch.device) -> "EvalOptions":
        """These options with `fast: true` resolved for `device` (see `RestorerOptions.fast_settings`)."""
        changes = self.restorer.fast_settings(device)
        return self.with_overrides(**changes) if changes else self


# Every top-level key an options file may hold.
TOP_LEVEL_KEYS = tuple(keys_of(EvalOptions))


def parse_options(raw: Mapping[str, Any]) -> EvalOptions:
    """Validate a raw options mapping (YAML with overrides applied) into `EvalOptions`."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"options: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return read(EvalOptions, raw)


def parse_restorer_options(raw: Mapping[str, Any]) -> RestorerOptions:
    """Validate the options of restoring images (no test set, no run folder) into `RestorerOptions`;
    the keys of test.py's other blocks are accepted and ignored, so a test.py options file serves."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"options: expected a mapping of keys at the top level, got {type(raw).__name__}")
    check_keys("options", raw, TOP_LEVEL_KEYS)
    ours = set(keys_of(RestorerOptions))
    return read(RestorerOptions, {k: v for k, v in raw.items() if k in ours})
