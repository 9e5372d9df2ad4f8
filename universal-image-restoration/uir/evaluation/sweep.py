"""The samplers of a sweep's points, built (and so checked) once, and the `Restorer` that a run's
options describe (network, DA-CLIP, IR-SDE, device)."""
from __future__ import annotations

import logging

import torch

from uir.common.errors import OptionsError
from uir.evaluation.conditioning import load_context_encoder
from uir.models.networks import load_network
from uir.options.restorer import RestorerOptions
from uir.options.sweep import SweepPoint
from uir.restoration import Restorer
from uir.runtime import prepare_network
from uir.samplers.base import Sampler
from uir.samplers.registry import SAMPLERS
from uir.sde.irsde import IRSDE
from uir.tiling import TiledDenoiser

logger = logging.getLogger(__name__)


def build_sampler_for(options: RestorerOptions, point: SweepPoint, sde: IRSDE) -> Sampler:
    """The sampler of one point (its NFE and overrides applied); OptionsError naming the point."""
    try:
        sampler = SAMPLERS[point.sampler](sde, options.sampler_options(point))
    except ValueError as exc:
        raise OptionsError(f"sampler {point.name!r} with nfe {point.nfe}: {exc}") from exc
    if sampler.integer_steps and point.nfe > sde.T:
        # With more steps than the SDE has (sde.T), the steps repeat grid points and quality falls
        # apart (posterior on the demo: 20.9 dB at NFE 100, 12.1 at 200).
        logger.warning("sampler %r with nfe %d: more steps than the SDE's T = %d; this sampler steps by whole "
                       "IR-SDE time steps, so the result will be poor (use nfe <= sde.T)", point.name, point.nfe, sde.T)
    return sampler


def build_sweep(options: RestorerOptions, points: tuple[SweepPoint, ...], sde: IRSDE) -> dict[str, Sampler]:
    """Every point's sampler, by the point's folder."""
    return {point.folder: build_sampler_for(options, point, sde) for point in points}


def load_restorer(options: RestorerOptions, *, device: torch.device | None = None, sde: IRSDE | None = None) -> Restorer:
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
