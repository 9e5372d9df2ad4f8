"""Samplers of IR-SDE: `sde` (Euler-Maruyama), `posterior`, `heun` and `mrsampler` (MR Sampler).

    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    sampler = build_sampler("mrsampler", sde, {"num_sample_steps": 10, "fit_target": "noise"})
    result = sampler.sample(model, x_T, mu, noise=torch.Generator().manual_seed(0))
    result.x, result.nfe, result.timesteps
"""
from uir.samplers.base import BaseSampler, BoundModel, Denoiser, ModelFn, SampleResult, Sampler
from uir.samplers.config import CORRECTORS, PARAMETERIZATIONS, SOLVER_TYPES, TIME_SCHEDULES, SamplerConfig
from uir.samplers.euler import EulerSampler
from uir.samplers.heun import HeunSampler
from uir.samplers.mrsampler import MRSampler
from uir.samplers.noise import GeneratorNoise, NoiseSource, PerSampleNoise, RecordedNoise
from uir.samplers.posterior import PosteriorSampler
from uir.samplers.registry import SAMPLERS, build_sampler

__all__ = [
    "BaseSampler", "BoundModel", "Denoiser", "ModelFn", "SampleResult", "SamplerConfig", "CORRECTORS", "PARAMETERIZATIONS",
    "SOLVER_TYPES", "TIME_SCHEDULES",
    "EulerSampler", "HeunSampler", "MRSampler", "PosteriorSampler", "GeneratorNoise", "NoiseSource",
    "PerSampleNoise", "RecordedNoise", "SAMPLERS", "Sampler", "build_sampler",
]
