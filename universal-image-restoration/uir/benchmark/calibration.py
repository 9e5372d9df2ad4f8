"""MR Sampler's time steps searched on a few images of a test set, checked on others, and written
as a preset options file (scripts/search_schedule.py; `uir.samplers.search`).

Calibration takes images from the end of each task's sorted listing, one task after another, so
that the held-out images (from the start of each listing, one per task by default) are never among
them. Calibration images are centre-cropped to one size so that they form one batch; held-out
images are restored whole, one at a time.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from uir.data.paired import ImagePair, read_image, to_tensor
from uir.common.errors import OptionsError
from uir.evaluation.tasks import TaskData
from uir.options.loader import apply_overrides, read_yaml
from uir.restoration import Restorer
from uir.samplers import MRSampler, MRSamplerOptions, PerSampleNoise, SearchOutcome, find_timesteps, reference_solution
from uir.samplers.search_target import NOISE_DRAWS, converged_ode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    calibration: list[ImagePair]
    held_out: list[ImagePair]


@dataclass(frozen=True)
class HeldOut:
    """RMSE to the converged ODE on the held-out images (over all their pixels), per grid."""

    nfe: int
    own: float
    searched: float


def split_images(tasks: list[TaskData], calibration: int, held_out: int | None) -> Split:
    """`calibration` images from the ends of the tasks' listings (round robin), and up to
    `held_out` per task from their starts (default: one), never the same image twice."""
    ends = [list(reversed(t.pairs)) for t in tasks]
    picked: list[ImagePair] = []
    while len(picked) < calibration and any(ends):
        for rest in ends:
            if rest and len(picked) < calibration:
                picked.append(rest.pop(0))
    taken = {p.lq for p in picked}
    per_task = 1 if held_out is None else held_out
    held = [p for t in tasks for p in [q for q in t.pairs if q.lq not in taken][:per_task]]
    if len(picked) < calibration:
        raise OptionsError(f"--images: the test set has {len(picked)} images, fewer than the {calibration} asked for")
    return Split(picked, held)


def load_lq(pairs: list[ImagePair], crop: int | None) -> Tensor:
    """The LQ images in [0, 1] as one batch, centre-cropped to `crop` (all must be at least that)."""
    images = []
    for p in pairs:
        x = to_tensor(read_image(p.lq))  # as test.py reads it (16-bit files scaled by 65535)
        if crop is not None:
            h, w = x.shape[-2:]
            if min(h, w) < crop:
                raise OptionsError(f"--crop {crop}: {p.lq} is only {w}x{h}; use a smaller --crop")
            top, left = (h - crop) // 2, (w - crop) // 2
            x = x[:, top:top + crop, left:left + crop]
        images.append(x)
    if len({tuple(x.shape) for x in images}) > 1:
        raise OptionsError("--crop: the calibration images differ in size; give --crop N to cut them to one size")
    return torch.stack(images)


def prior(restorer: Restorer, mu: Tensor, first_seed: int) -> Tensor:
    return restorer.sde.prior_sample(mu, PerSampleNoise.from_seeds(range(first_seed, first_seed + len(mu)))(mu))


def calibrate(restorer: Restorer, options: MRSamplerOptions, pairs: list[ImagePair], nfes: list[int],
              crop: int | None, *, seed: int = 0, reference_substeps: int = 2, noise_draws: int = NOISE_DRAWS,
              log: Callable[[str], None] = print, **settings: Any) -> dict[int, SearchOutcome]:
    """The searched grid per NFE (ascending; each search may also start from the grid of the NFE
    before it), on the calibration images (`noise_draws` starts each), against one converged ODE
    solution shared by all NFEs (`reference_substeps` steps per unit of t; `settings`:
    `find_timesteps`' other keywords)."""
    mu = load_lq(pairs, crop).to(restorer.device)
    x_T = prior(restorer, mu, seed)
    image_context, text_context = restorer.contexts(mu)
    contexts = {"image_context": image_context, "text_context": text_context}
    log(f"the converged ODE on {len(pairs)} images of {tuple(mu.shape[-2:])}, {noise_draws} starts each")
    reference = reference_solution(restorer.sde, restorer.denoiser, x_T, mu, config=options,
                                   substeps=reference_substeps, noise_draws=noise_draws, **contexts)
    log(f"the converged ODE: {reference.model_calls} network calls")
    found: dict[int, SearchOutcome] = {}
    for nfe in sorted(nfes):
        starts = {f"searched for NFE {n}": found[n].timesteps for n in found}
        log(f"NFE {nfe}: searching")
        found[nfe] = find_timesteps(restorer.sde, restorer.denoiser, x_T, mu, nfe=nfe, config=options,
                                    starts=starts, reference=reference, noise_draws=noise_draws, log=log,
                                    **contexts, **settings)
        o = found[nfe]
        log(f"NFE {nfe}: error {o.own_error:.3e} on the options' own grid -> {o.error:.3e} searched "
            f"({o.error / o.own_error:.2f}x; from {o.start}, {o.evaluations} grids, {o.model_calls} network calls)")
    return found


def held_out_errors(restorer: Restorer, options: MRSamplerOptions, pairs: list[ImagePair],
                    found: dict[int, SearchOutcome], *, seed: int = 1000, substeps: int = 2) -> list[HeldOut]:
    """Own and searched grids' RMSE to the converged ODE on each held-out image, whole, pooled."""
    sq = {(nfe, kind): 0.0 for nfe in found for kind in ("own", "searched")}
    count = 0
    for k, pair in enumerate(pairs):
        mu = load_lq([pair], None).to(restorer.device)
        x_T = prior(restorer, mu, seed + k)
        image_context, text_context = restorer.contexts(mu)
        contexts = {"image_context": image_context, "text_context": text_context}
        target = converged_ode(restorer.sde, restorer.denoiser, x_T, mu, options, substeps, contexts)
        for nfe, outcome in found.items():
            grids = {"own": options.with_overrides(num_sample_steps=nfe),
                     "searched": searched_options(options, {nfe: outcome.timesteps}, nfe)}
            for kind, grid in grids.items():
                x = MRSampler(restorer.sde, grid).sample(restorer.denoiser, x_T, mu, **contexts).x
                sq[nfe, kind] += (x.double() - target).pow(2).sum().item()
        count += target.numel()
    return [HeldOut(nfe, (sq[nfe, "own"] / count) ** 0.5, (sq[nfe, "searched"] / count) ** 0.5) for nfe in found]


def searched_options(options: MRSamplerOptions, grids: dict[int, list[float]], nfe: int) -> MRSamplerOptions:
    return options.with_overrides(num_sample_steps=nfe, time_schedule="custom", timesteps=grids)


def write_preset(source: Path, out: Path, found: dict[int, SearchOutcome], header: list[str],
                 overrides: list[tuple[str, Any]] = ()) -> None:
    """The options file `source` (`overrides` applied) with the searched grids in its sampler block (`time_schedule:
    custom`, `timesteps:` by NFE), its MR Sampler sweep points at the searched NFEs, and `name`
    suffixed; `header` goes on top as comments. Refuses to replace a file."""
    raw = apply_overrides(read_yaml(source), overrides)
    sampler = dict(raw.get("sampler") or {})
    nfes = sorted(found)
    sampler.update(time_schedule="custom", timesteps={n: found[n].timesteps for n in nfes})
    if sampler.get("num_sample_steps") not in found:
        sampler["num_sample_steps"] = nfes[-1]
    raw["sampler"] = sampler
    raw["name"] = f"{raw.get('name') or source.stem}_searched"
    sweep = raw.get("sweep")
    if isinstance(sweep, dict) and isinstance(sweep.get("runs"), list):
        others = [r for r in sweep["runs"] if not (isinstance(r, dict) and r.get("sampler") == "mrsampler")]
        sweep["runs"] = [{"sampler": "mrsampler", "nfe": n, "label": "searched"} for n in nfes] + others
    text = "".join(f"# {line}\n" if line else "#\n" for line in header)
    text += yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=120)
    with open(out, "x") as f:  # never replaces a file
        f.write(text)
