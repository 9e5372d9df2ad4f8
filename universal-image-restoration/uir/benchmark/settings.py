"""What one benchmark run measures: the network presets, the device-dependent defaults, the
`Settings` of a run and its sampler rows."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from uir.options import SweepPoint, read_yaml
from uir.samplers import MRSampler, MRSamplerOptions, Sampler, build_sampler
from uir.sde import IRSDE

REPO = Path(__file__).resolve().parents[3]
MRSAMPLER_OPTIONS = REPO / "options" / "mrsampler.yml"

# The `sampler:` block of the reference's options/mrsampler.yml (MR Sampler ODE-2, data
# prediction of a noise-predicting network); used when options/mrsampler.yml is absent.
REFERENCE_MRSAMPLER_BLOCK = dict(
    solver_type="ode", parameterization="data", order=2, fit_target="noise", lambda_min=-5.0,
    time_schedule="linspace", thresholding=False, threshold_ratio=0.995, threshold_max=1.5, denoise_last=False,
)
# The reference's IR-SDE (max_sigma, T, schedule, eps).
SDE_SETTINGS = (50, 100, "cosine", 0.005)
WARMUP_STEPS = 2
CROP_BORDER = 4

# Network presets: the UNet's `network_G.setting` and the DA-CLIP model config.
TINY_DACLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
}
NETWORKS: dict[str, tuple[dict[str, Any], str | dict[str, Any]]] = {
    "full": (dict(in_nc=3, out_nc=3, nf=64, ch_mult=[1, 2, 4, 8], context_dim=512,
                  use_degra_context=True, use_image_context=True), "ViT-B-32"),
    "small": (dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2, 4, 8], context_dim=512,
                   use_degra_context=True, use_image_context=True), "ViT-B-32"),
    "tiny": (dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 2], context_dim=32,
                  use_degra_context=True, use_image_context=True), TINY_DACLIP),
}

# Defaults that depend on the device: the full GPU benchmark, and what 2 CPU cores finish in minutes.
DEVICE_DEFAULTS = {
    "cuda": dict(sizes=[256, 512], nfe=[10, 20, 100], posterior_nfe=[100], images=16, ref_images=4,
                 batch_size="auto", channels_last=True),
    "cpu": dict(sizes=[64, 128], nfe=[10, 20], posterior_nfe=[], images=4, ref_images=4,
                batch_size=4, channels_last=False),
}


@dataclass
class Settings:
    """What one benchmark run measures (`uir.benchmark.cli` says what each means)."""

    device: torch.device
    sizes: list[int]
    nfe: list[int]
    posterior_nfe: list[int]
    images: int
    ref_images: int
    batch_size: int | str
    precision: str
    channels_last: bool
    compile: bool
    network: str
    seed: int = 0
    crop_border: int = CROP_BORDER


def mrsampler_block() -> dict[str, Any]:
    """The `sampler:` block of options/mrsampler.yml, or the reference's when that file is absent."""
    if MRSAMPLER_OPTIONS.is_file():
        block = dict(read_yaml(MRSAMPLER_OPTIONS).get("sampler") or {})
        block.pop("num_sample_steps", None)
        return block
    return dict(REFERENCE_MRSAMPLER_BLOCK)


@dataclass(frozen=True)
class BenchPoint:
    """One row of the benchmark: a sweep point and its sampler."""

    point: SweepPoint
    sampler: Sampler


def sweep_points(sde: IRSDE, mrsampler_nfes: Sequence[int], posterior_nfes: Sequence[int]) -> list[BenchPoint]:
    """The benchmark's rows: MR Sampler (`mrsampler_block`, labelled e.g. `mrsampler-ode2-data`)
    at each of `mrsampler_nfes`, then the posterior sampler at each of `posterior_nfes`."""
    block = mrsampler_block()
    base = MRSampler.options_from(block)
    label = f"mrsampler-{base.solver_type}{base.order}-{base.parameterization}"
    points = [(SweepPoint("mrsampler", n, label), {**block, "num_sample_steps": n}) for n in mrsampler_nfes]
    points += [(SweepPoint("posterior", n), {"num_sample_steps": n}) for n in posterior_nfes]
    return [BenchPoint(point, build_sampler(point.sampler, sde, config)) for point, config in points]


def warmup_config() -> MRSamplerOptions:
    """The short MR Sampler run (`WARMUP_STEPS` steps) that warms a path up before it is timed."""
    return MRSampler.options_from({**mrsampler_block(), "num_sample_steps": WARMUP_STEPS})
