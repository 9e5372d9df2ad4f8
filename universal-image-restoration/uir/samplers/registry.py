"""The one map from a YAML `sde.algorithm` name to a sampler class."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from uir.common.checks import check_choice
from uir.samplers.base import BaseSampler, Sampler
from uir.samplers.config import SamplerConfig
from uir.samplers.euler import EulerSampler
from uir.samplers.heun import HeunSampler
from uir.samplers.mrsampler import MRSampler
from uir.samplers.posterior import PosteriorSampler
from uir.sde.irsde import IRSDE

SAMPLERS: dict[str, type[BaseSampler]] = {
    cls.name: cls for cls in (EulerSampler, PosteriorSampler, HeunSampler, MRSampler)
}  # "sde" in the reference's options means Euler-Maruyama


def build_sampler(name: str, sde: IRSDE, config: SamplerConfig | Mapping[str, Any] | None = None) -> Sampler:
    """Build the sampler `name` ("sde", "posterior", "heun", "mrsampler") from a validated
    `SamplerConfig` or a raw `sampler:` block. Invalid input raises ValueError naming the key."""
    check_choice("sde.algorithm", name, SAMPLERS)
    cfg = config if isinstance(config, SamplerConfig) else SamplerConfig.from_dict(config)
    return SAMPLERS[name].from_config(sde, cfg)
