"""The points of a sweep (sampler, NFE, label, settings), built and checked once, and the
`Restorer` that a run's options describe (network, DA-CLIP, IR-SDE, device)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from uir.common.errors import OptionsError
from uir.evaluation.conditioning import load_context_encoder
from uir.models.networks import load_network
from uir.options.schema import EvalOptions, SweepEntry
from uir.restoration import Restorer
from uir.runtime import prepare_network
from uir.samplers import SamplerConfig, build_sampler
from uir.samplers.registry import Sampler
from uir.sde.irsde import IRSDE
from uir.tiling import TiledDenoiser

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep, its sampler built (and so validated)."""

    entry: SweepEntry
    config: SamplerConfig
    sampler: Sampler

    @property
    def folder(self) -> str:
        return self.entry.folder

    @property
    def key(self) -> tuple[str, int]:
        """(label or sampler, nfe): what identifies the point in the per-image CSV."""
        return self.entry.name, self.entry.nfe


# Samplers on IR-SDE's integer grid: with more steps than the SDE has (sde.T), the steps repeat
# grid points and quality falls apart (posterior on the demo: 20.9 dB at NFE 100, 12.1 at 200).
INTEGER_GRID_SAMPLERS = ("sde", "posterior", "heun")


def build_sweep(options: EvalOptions, sde: IRSDE) -> list[SweepPoint]:
    """Every point of the sweep, each checked by building its sampler."""
    points = []
    for entry in options.runs:
        if entry.sampler in INTEGER_GRID_SAMPLERS and entry.nfe > sde.T:
            logger.warning("sampler %r with nfe %d: more steps than the SDE's T = %d; this sampler steps on the "
                           "integer grid, so the result will be poor (use nfe <= sde.T)", entry.name, entry.nfe, sde.T)
        try:
            config = options.sampler_config(entry)
            points.append(SweepPoint(entry, config, build_sampler(entry.sampler, sde, config)))
        except ValueError as exc:
            raise OptionsError(f"sampler {entry.name!r} with nfe {entry.nfe}: {exc}") from exc
    return points


def load_restorer(options: EvalOptions, *, device: torch.device | None = None, sde: IRSDE | None = None) -> Restorer:
    """The network (and DA-CLIP when it reads contexts) as `options` say, on `device` (default:
    the options' device). Raises OptionsError / CheckpointError with messages for the user."""
    device = options.runtime.resolve_device() if device is None else device
    network = load_network(options.network_G.which_model_G, options.network_G.setting,
                           options.path.pretrain_model_G, strict=options.path.strict_load)
    logger.info("network %s loaded from %s", options.network_G.which_model_G, options.path.pretrain_model_G)
    encoder = load_context_encoder(options, network, device)
    sde = IRSDE.from_settings(options.sde) if sde is None else sde
    denoiser = prepare_network(network, device, options.runtime)
    if options.tile is not None:
        denoiser = TiledDenoiser(denoiser, options.tile)  # contexts still come from the whole image
    return Restorer(sde, denoiser, encoder, device)
