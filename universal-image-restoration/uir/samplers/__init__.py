"""Samplers of IR-SDE: `sde` (Euler-Maruyama), `posterior`, `heun` and `mrsampler` (MR Sampler),
registered by name in `SAMPLERS`; a sampler of one's own is one class and one decorator
(`uir.samplers.registry`).

    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    sampler = build_sampler("mrsampler", sde, {"num_sample_steps": 10, "fit_target": "noise"})
    result = sampler.sample(model, x_T, mu, noise=torch.Generator().manual_seed(0),
                            callback=lambda step: print(step.i, step.t))
    result.x, result.model_calls, result.timesteps, result.steps

MR Sampler's time points can be searched for a model (`search_timesteps`) and given back as
`time_schedule: custom` with `timesteps:`.
"""
from uir.samplers.base import (
    BaseSampler, BoundModel, Callback, Denoiser, ModelFn, SampleResult, Sampler, Step, build_sampler,
)
from uir.samplers.noise import GeneratorNoise, NoiseSource, PerSampleNoise, RecordedNoise
from uir.samplers.options import SamplerBlock, SamplerOptions
from uir.samplers.registry import SAMPLERS
# The built-in samplers register themselves on import, in this order.
from uir.samplers.euler import EulerSampler  # noqa: E402  (isort: skip)
from uir.samplers.posterior import PosteriorSampler  # noqa: E402
from uir.samplers.heun import HeunOptions, HeunSampler  # noqa: E402
from uir.samplers.mrsampler import (  # noqa: E402
    CORRECTORS, PARAMETERIZATIONS, SOLVER_TYPES, TIME_SCHEDULES, MRSampler, MRSamplerOptions,
)
from uir.samplers.search_target import Reference, reference_solution  # noqa: E402
from uir.samplers.search import SearchOutcome, find_timesteps, search_timesteps  # noqa: E402

__all__ = [
    "BaseSampler", "BoundModel", "Callback", "Denoiser", "ModelFn", "SampleResult", "Sampler", "Step",
    "GeneratorNoise", "NoiseSource", "PerSampleNoise", "RecordedNoise", "SamplerBlock", "SamplerOptions",
    "SAMPLERS", "build_sampler", "EulerSampler", "PosteriorSampler", "HeunOptions", "HeunSampler",
    "CORRECTORS", "PARAMETERIZATIONS", "SOLVER_TYPES", "TIME_SCHEDULES", "MRSampler", "MRSamplerOptions",
    "Reference", "SearchOutcome", "find_timesteps", "reference_solution", "search_timesteps",
]
