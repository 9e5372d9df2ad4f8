"""The options of `test.py`, validated once into frozen dataclasses.

An options file holds the reference's keys (``name, suffix, model, distortion, gpu_ids,
sde, degradation, datasets, network_G, path, sampler`` and ``crop_border``) plus keys of
our own that control the run (device, batching, precision, outputs). `parse_options`
turns the raw YAML mapping into an `EvalOptions`; nothing downstream reads raw dicts.
Every error is a `ValueError` that names the key and says what is valid.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from uir.options.validation import check_bool, check_choice, check_device, check_float, check_int, check_keys, section
from uir.samplers.config import SamplerConfig
from uir.samplers.registry import SAMPLERS
from uir.sde.irsde import SCHEDULES

PRECISIONS = ("fp32", "bf16", "fp16")
DACLIP_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DATASET_MODES = ("LQGT", "LQ")
MODELS = ("denoising",)
DEFAULT_DACLIP_CONFIG = "ViT-B-32"
# The reference's ten tasks (DA-CLIP's degradation types), in its order.
REFERENCE_TASKS = (
    "motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy",
    "raindrop", "rainy", "shadowed", "snowy", "uncompleted",
)

def _optional_str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        return text if text.strip() else None
    raise ValueError(f"{key}: expected a string or ~ (null), got {value!r}")


def _optional_path(key: str, value: Any) -> str | None:
    text = _optional_str(key, value)
    return os.path.expanduser(text) if text is not None else None


def _str_list(key: str, value: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"{key}: expected a name or a list of names, got {value!r}")
    if not items and not allow_empty:
        raise ValueError(f"{key}: the list is empty")
    return tuple(items)


def _folder_names(key: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Task names become folder names of the results: no path separators."""
    for name in names:
        if "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"{key}: {name!r} is not a plain name (task names become result folders)")
    return names


def _unique(key: str, items: tuple) -> tuple:
    seen = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{key}: {item!r} appears twice")
        seen.add(item)
    return items


# ---- the reference's sections ---------------------------------------------------------------


@dataclass(frozen=True)
class IRSDESettings:
    """`sde:` the IR-SDE itself (defaults: the reference's option files); train.py's `sde:` block."""

    max_sigma: float = 50.0
    T: int = 100
    schedule: str = "cosine"
    eps: float = 0.005

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "IRSDESettings":
        check_keys("sde", block, [f.name for f in fields(cls)])
        d = replace(IRSDESettings(), **block)
        max_sigma = check_float("sde.max_sigma", d.max_sigma)
        eps = check_float("sde.eps", d.eps)
        if max_sigma <= 0:
            raise ValueError(f"sde.max_sigma: must be positive, got {max_sigma}")
        if not 0 < eps < 1:
            raise ValueError(f"sde.eps: must lie in (0, 1), got {eps}")
        return IRSDESettings(max_sigma=max_sigma, T=check_int("sde.T", d.T, minimum=1),
                             schedule=check_choice("sde.schedule", d.schedule, SCHEDULES), eps=eps)


_IRSDE_KEYS = tuple(f.name for f in fields(IRSDESettings))


@dataclass(frozen=True)
class SDEOptions(IRSDESettings):
    """test.py's `sde:` block: the IR-SDE and the sampler name."""

    algorithm: str = "mrsampler"

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "SDEOptions":
        check_keys("sde", block, [f.name for f in fields(cls)])
        base = IRSDESettings.from_dict({k: v for k, v in block.items() if k in _IRSDE_KEYS})
        algorithm = check_choice("sde.algorithm", block.get("algorithm", cls.algorithm), SAMPLERS)
        return cls(**{k: getattr(base, k) for k in _IRSDE_KEYS}, algorithm=algorithm)


@dataclass(frozen=True)
class DegradationOptions:
    """`degradation:` kept for compatibility; `scale` is the crop_border fallback (as in the reference)."""

    sigma: float | None = 25.0
    noise_type: str | None = "G"
    scale: int = 4

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "DegradationOptions":
        check_keys("degradation", block, [f.name for f in fields(cls)])
        d = replace(cls(), **block)
        return cls(
            sigma=None if d.sigma is None else check_float("degradation.sigma", d.sigma),
            noise_type=_optional_str("degradation.noise_type", d.noise_type),
            scale=check_int("degradation.scale", d.scale, minimum=0),
        )


@dataclass(frozen=True)
class DatasetOptions:
    """One block under `datasets:` (e.g. `test1`): a task's LQ folder and optional GT folder."""

    key: str  # the block's name under `datasets:`, e.g. "test1"
    name: str
    mode: str = "LQGT"
    dataroot_LQ: str | None = None
    dataroot_GT: str | None = None

    @classmethod
    def from_dict(cls, key: str, block: Any) -> "DatasetOptions":
        where = f"datasets.{key}"
        if not isinstance(block, Mapping):
            raise ValueError(f"{where}: expected a mapping with name, mode, dataroot_GT, dataroot_LQ; got {block!r}")
        check_keys(where, block, ["name", "mode", "dataroot_GT", "dataroot_LQ"])
        name = _optional_str(f"{where}.name", block.get("name"))
        if name is None:
            raise ValueError(f"{where}.name: not set; it names the task (e.g. one of {', '.join(REFERENCE_TASKS)})")
        _folder_names(f"{where}.name", (name,))
        mode = check_choice(f"{where}.mode", block.get("mode", "LQGT"), DATASET_MODES)
        lq = _optional_path(f"{where}.dataroot_LQ", block.get("dataroot_LQ"))
        if lq is None:
            raise ValueError(f"{where}.dataroot_LQ: not set; point it at the folder of degraded (LQ) images")
        gt = _optional_path(f"{where}.dataroot_GT", block.get("dataroot_GT")) if mode == "LQGT" else None
        return cls(key=key, name=name, mode=mode, dataroot_LQ=lq, dataroot_GT=gt)


@dataclass(frozen=True)
class NetworkOptions:
    """`network_G:` the generator's class name and constructor settings (defaults filled in)."""

    which_model_G: str
    setting: Mapping[str, Any]

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "NetworkOptions":
        from uir.models.networks import network_arguments  # imports torch models; only when parsing

        check_keys("network_G", block, ["which_model_G", "setting"])
        which = block.get("which_model_G", "ConditionalUNet")
        if not isinstance(which, str):
            raise ValueError(f"network_G.which_model_G: expected a network name, got {which!r}")
        setting = block.get("setting")
        if setting is not None and not isinstance(setting, Mapping):
            raise ValueError(f"network_G.setting: expected a mapping, got {setting!r}")
        resolved = network_arguments(which, setting)
        return cls(which, {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()})


@dataclass(frozen=True)
class PathOptions:
    """`path:` the UNet checkpoint, the DA-CLIP checkpoint (~ when the network needs no contexts)."""

    pretrain_model_G: str | None = None
    daclip: str | None = None
    strict_load: bool = True

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> "PathOptions":
        check_keys("path", block, [f.name for f in fields(cls)])
        strict = block.get("strict_load", True)
        return cls(
            pretrain_model_G=_optional_path("path.pretrain_model_G", block.get("pretrain_model_G")),
            daclip=_optional_path("path.daclip", block.get("daclip")),
            strict_load=True if strict is None else check_bool("path.strict_load", strict),
        )


# ---- our own sections -----------------------------------------------------------------------


@dataclass(frozen=True)
class SweepOptions:
    """`sweep:` the (sampler, NFE) pairs to evaluate: `samplers` x `nfe` (default: `sde.algorithm`
    x `sampler.num_sample_steps`), or an explicit list `runs: [{sampler: NAME, nfe: N}, ...]`
    when each sampler needs its own NFE (the command line's --sampler / --nfe replace `runs`)."""

    samplers: tuple[str, ...]
    nfe: tuple[int, ...]
    runs: tuple[tuple[str, int], ...] | None = None

    @property
    def pairs(self) -> tuple[tuple[str, int], ...]:
        if self.runs is not None:
            return self.runs
        return tuple((name, n) for name in self.samplers for n in self.nfe)

    @classmethod
    def from_dict(cls, block: Mapping[str, Any], sde: SDEOptions, sampler: SamplerConfig) -> "SweepOptions":
        check_keys("sweep", block, ["samplers", "nfe", "runs"])
        if block.get("runs") is not None:
            return cls._from_runs(block)
        samplers = block.get("samplers")
        samplers = (sde.algorithm,) if samplers is None else _str_list("sweep.samplers (--sampler)", samplers)
        for name in samplers:
            check_choice("sweep.samplers (--sampler)", name, SAMPLERS)
        nfe = block.get("nfe")
        if nfe is None:
            nfe = (sampler.num_sample_steps,)
        else:
            items = nfe if isinstance(nfe, (list, tuple)) else [nfe]
            if not items:
                raise ValueError("sweep.nfe: the list is empty")
            nfe = tuple(check_int("sweep.nfe (--nfe)", n, minimum=1) for n in items)
        return cls(_unique("sweep.samplers (--sampler)", tuple(samplers)), _unique("sweep.nfe (--nfe)", tuple(nfe)))

    @classmethod
    def _from_runs(cls, block: Mapping[str, Any]) -> "SweepOptions":
        if block.get("samplers") is not None or block.get("nfe") is not None:
            raise ValueError("sweep.runs: give either runs or samplers/nfe, not both")
        items = block["runs"]
        if not isinstance(items, (list, tuple)) or not items:
            raise ValueError(f"sweep.runs: expected a non-empty list of {{sampler: NAME, nfe: N}}, got {items!r}")
        runs = []
        for k, item in enumerate(items):
            where = f"sweep.runs[{k}]"
            if not isinstance(item, Mapping):
                raise ValueError(f"{where}: expected {{sampler: NAME, nfe: N}}, got {item!r}")
            check_keys(where, item, ["sampler", "nfe"])
            name = check_choice(f"{where}.sampler", item.get("sampler"), SAMPLERS)
            runs.append((name, check_int(f"{where}.nfe", item.get("nfe"), minimum=1)))
        runs = tuple(runs)
        if len(set(runs)) != len(runs):
            raise ValueError(f"sweep.runs: a (sampler, nfe) pair is listed twice: {runs}")
        return cls(_unique("sweep.runs", tuple(dict.fromkeys(n for n, _ in runs))),
                   tuple(dict.fromkeys(n for _, n in runs)), runs)


@dataclass(frozen=True)
class EvalOptions:
    """Everything `test.py` needs, validated. Build it with `parse_options(raw)`."""

    network_G: NetworkOptions
    name: str = "universal-ir"
    suffix: str | None = None
    model: str = "denoising"
    distortion: tuple[str, ...] = REFERENCE_TASKS
    gpu_ids: tuple[int, ...] = (0,)
    sde: SDEOptions = field(default_factory=SDEOptions)
    degradation: DegradationOptions = field(default_factory=DegradationOptions)
    datasets: tuple[DatasetOptions, ...] = ()
    path: PathOptions = field(default_factory=PathOptions)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    crop_border: int | None = None
    # -- the run (ours) --
    seed: int = 0
    device: str = "auto"
    batch_size: int | str = 1
    num_workers: int = 2
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    metrics: bool = True
    lpips: bool = True
    data_root: str | None = None
    tasks: tuple[str, ...] | None = None
    results_root: str = "results"
    max_images: int | None = None
    save_images: bool = True
    daclip_config: str | Mapping[str, Any] = DEFAULT_DACLIP_CONFIG
    daclip_precision: str = "auto"
    overwrite: bool = False
    resume: bool | str = False
    sweep: SweepOptions | None = None

    @property
    def effective_crop_border(self) -> int:
        """`crop_border`, or `degradation.scale` when it is unset, as in the reference (which
        also falls back when it is 0; here an explicit 0 means no crop)."""
        return self.degradation.scale if self.crop_border is None else self.crop_border

    @property
    def samplers(self) -> tuple[str, ...]:
        return self.sweep.samplers if self.sweep else (self.sde.algorithm,)

    @property
    def nfes(self) -> tuple[int, ...]:
        return self.sweep.nfe if self.sweep else (self.sampler.num_sample_steps,)

    @property
    def runs(self) -> tuple[tuple[str, int], ...]:
        """Every (sampler, NFE) pair to evaluate, in order."""
        return self.sweep.pairs if self.sweep else ((self.sde.algorithm, self.sampler.num_sample_steps),)

    def to_dict(self) -> dict[str, Any]:
        """The resolved options as a plain YAML-ready mapping (parses back to an equal object)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "datasets":
                out["datasets"] = {
                    d.key: {"name": d.name, "mode": d.mode, "dataroot_GT": d.dataroot_GT, "dataroot_LQ": d.dataroot_LQ}
                    for d in value
                }
            elif f.name == "network_G":
                out["network_G"] = {"which_model_G": value.which_model_G, "setting": copy.deepcopy(dict(value.setting))}
            elif f.name == "sampler":
                out["sampler"] = value.to_dict()
            elif f.name == "sweep":
                if value is not None and value.runs is not None:
                    out["sweep"] = {"runs": [{"sampler": n, "nfe": k} for n, k in value.runs]}
                else:
                    out["sweep"] = {"samplers": list(self.samplers), "nfe": list(self.nfes)}
            elif hasattr(value, "__dataclass_fields__"):
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            elif isinstance(value, Mapping):
                out[f.name] = copy.deepcopy(dict(value))
            else:
                out[f.name] = value
        return out


# Every top-level key an options file may hold.
TOP_LEVEL_KEYS = tuple(f.name for f in fields(EvalOptions))


def _batch_size(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        raise ValueError(f"batch_size: expected a positive integer or 'auto', got {value!r}")
    return check_int("batch_size", value, minimum=1)


def _daclip_config(value: Any) -> str | Mapping[str, Any]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    raise ValueError(
        f"daclip_config: expected an open_clip model name (e.g. {DEFAULT_DACLIP_CONFIG!r}) or a model "
        f"config mapping (embed_dim, vision_cfg, text_cfg), got {value!r}"
    )


def _resume(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = _optional_path("resume", value)
    if text is None:
        return False
    return text


def _gpu_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(check_int(f"gpu_ids[{i}]", v, minimum=0) for i, v in enumerate(items))


def parse_options(raw: Mapping[str, Any]) -> EvalOptions:
    """Validate a raw options mapping (YAML with overrides applied) into `EvalOptions`."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"options: expected a mapping of keys at the top level, got {type(raw).__name__}")
    check_keys("options", raw, TOP_LEVEL_KEYS)
    if raw.get("network_G") is None:
        raise ValueError("network_G: not set; it names the network (which_model_G) and its setting")

    sde = SDEOptions.from_dict(section(raw, "sde", ""))
    sampler = SamplerConfig.from_dict(section(raw, "sampler", ""))
    datasets_block = section(raw, "datasets", "")
    datasets = tuple(DatasetOptions.from_dict(str(k), datasets_block[k]) for k in sorted(datasets_block, key=str))
    _unique("datasets.*.name", tuple(d.name for d in datasets))

    crop = raw.get("crop_border")
    max_images = raw.get("max_images")
    tasks = raw.get("tasks")
    name = _optional_str("name", raw.get("name", "universal-ir"))
    if name is None or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"name: expected a folder name (no slashes), got {raw.get('name')!r}")
    suffix = _optional_str("suffix", raw.get("suffix"))
    if suffix is not None and ("/" in suffix or "\\" in suffix):
        raise ValueError(f"suffix: must not contain slashes, got {suffix!r}")
    results_root = _optional_path("results_root", raw.get("results_root", "results"))

    options = EvalOptions(
        network_G=NetworkOptions.from_dict(section(raw, "network_G", "")),
        name=name,
        suffix=suffix,
        model=check_choice("model", raw.get("model", "denoising"), MODELS),
        distortion=_folder_names("distortion", _str_list("distortion", raw.get("distortion", list(REFERENCE_TASKS)))),
        gpu_ids=_gpu_ids(raw.get("gpu_ids", [0])),
        sde=sde,
        degradation=DegradationOptions.from_dict(section(raw, "degradation", "")),
        datasets=datasets,
        path=PathOptions.from_dict(section(raw, "path", "")),
        sampler=sampler,
        crop_border=None if crop is None else check_int("crop_border", crop, minimum=0),
        seed=check_int("seed", raw.get("seed", 0), minimum=0),
        device=check_device("device", raw.get("device", "auto")),
        batch_size=_batch_size(raw.get("batch_size", 1)),
        num_workers=check_int("num_workers", raw.get("num_workers", 2), minimum=0),
        precision=check_choice("precision", raw.get("precision", "fp32"), PRECISIONS),
        channels_last=check_bool("channels_last", raw.get("channels_last", False)),
        compile=check_bool("compile", raw.get("compile", False)),
        metrics=check_bool("metrics", raw.get("metrics", True)),
        lpips=check_bool("lpips", raw.get("lpips", True)),
        data_root=_optional_path("data_root", raw.get("data_root")),
        tasks=None if tasks is None else _unique("tasks (--dataset)", _folder_names(
            "tasks (--dataset)", _str_list("tasks (--dataset)", tasks))),
        results_root=results_root or "results",
        max_images=None if max_images is None else check_int("max_images", max_images, minimum=1),
        save_images=check_bool("save_images", raw.get("save_images", True)),
        daclip_config=_daclip_config(raw.get("daclip_config", DEFAULT_DACLIP_CONFIG)),
        daclip_precision=check_choice("daclip_precision", raw.get("daclip_precision", "auto"), DACLIP_PRECISIONS),
        overwrite=check_bool("overwrite", raw.get("overwrite", False)),
        resume=_resume(raw.get("resume", False)),
        sweep=SweepOptions.from_dict(section(raw, "sweep", ""), sde, sampler),
    )
    if options.overwrite and options.resume:
        raise ValueError("overwrite and resume: choose one (--overwrite replaces a run folder, --resume continues it)")
    if options.tasks is not None and options.data_root is None:
        raise ValueError(
            "tasks (--dataset): task names need a data root holding ROOT/<task>/{LQ,GT}; "
            "set data_root in the options file or pass --data-root"
        )
    if options.data_root is None and not options.datasets:
        raise ValueError(
            "datasets: no test set; add a datasets.test1 block (name, mode, dataroot_GT, dataroot_LQ) "
            "or set data_root (--data-root) to evaluate ROOT/<task>/{LQ,GT} for the tasks in distortion"
        )
    return options
