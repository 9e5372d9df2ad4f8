"""The per-step callback: every sampler calls it once per step, the last state is the result, the
predictions are the network's, and the numbers are bit-identical with and without it."""
from __future__ import annotations

import pytest
import torch

from uir.samplers import SAMPLERS, RecordedNoise, build_sampler
from uir.sde import IRSDE
from uir.sde.oracle import GaussianOracle
from uir.sde.predictions import to_data

SDE = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
CASES = [
    ("sde", {"num_sample_steps": 6}),
    ("posterior", {"num_sample_steps": 6}),
    ("heun", {"num_sample_steps": 5, "solver_type": "ode"}),
    ("heun", {"num_sample_steps": 6, "solver_type": "sde"}),
    ("mrsampler", {"num_sample_steps": 6, "order": 2, "fit_target": "noise"}),
    ("mrsampler", {"num_sample_steps": 6, "order": 3, "parameterization": "noise", "fit_target": "velocity",
                   "corrector": "unic"}),
    ("mrsampler", {"num_sample_steps": 5, "solver_type": "sde", "order": 2, "fit_target": "noise",
                   "denoise_last": True, "thresholding": True}),
]


def problem():
    g = torch.Generator().manual_seed(5)
    m = 0.3 + 0.4 * torch.rand(2, 3, 8, 8, generator=g)
    mu = torch.rand(2, 3, 8, 8, generator=g)
    return m, mu, mu + SDE.sigma_inf * torch.randn(2, 3, 8, 8, generator=g)


def run(name, cfg, callback=None):
    m, mu, x_T = problem()
    sampler = build_sampler(name, SDE, cfg)
    oracle = GaussianOracle(SDE, m, 0.15, sampler.fit_target)
    noise = torch.Generator().manual_seed(11)
    return sampler, sampler.sample(oracle, x_T.clone(), mu, noise=noise, callback=callback)


def test_every_registered_sampler_has_a_case():
    assert set(SAMPLERS.names()) <= {name for name, _ in CASES}


@pytest.mark.parametrize("name, cfg", CASES)
def test_the_callback_sees_every_step_and_changes_nothing(name, cfg):
    steps = []
    _, plain = run(name, cfg)
    sampler, seen = run(name, cfg, callback=steps.append)
    assert torch.equal(plain.x, seen.x) and plain.model_calls == seen.model_calls and plain.timesteps == seen.timesteps
    assert len(steps) == seen.steps == plain.steps > 0
    assert [s.i for s in steps] == list(range(1, len(steps) + 1))
    assert torch.equal(steps[-1].x, seen.x)  # the last state is the result
    times = [s.t for s in steps]
    assert times == sorted(times, reverse=True) and times[0] < seen.timesteps[0]
    assert all(s.prediction is not None and s.denoised is not None for s in steps)  # one network call each


@pytest.mark.parametrize("name, cfg", [CASES[1], CASES[4]])
def test_denoised_is_the_networks_data_prediction_at_the_step(name, cfg):
    """The oracle's x_0 prediction at the point where the step first called it."""
    calls = []
    m, mu, x_T = problem()
    sampler = build_sampler(name, SDE, cfg)
    oracle = GaussianOracle(SDE, m, 0.15, sampler.fit_target)

    def recording(x, mu_, t, **kw):
        calls.append((x.clone(), float(t)))
        return oracle(x, mu_, t, **kw)

    steps = []
    sampler.sample(recording, x_T, mu, noise=torch.Generator().manual_seed(1), callback=steps.append)
    for step, (x, t) in zip(steps, calls):
        alpha, sigma = SDE.marginals(t)
        expected = to_data(GaussianOracle(SDE, m, 0.15, "noise")(x, mu, t), "noise", x, mu, alpha, sigma,
                           SDE.sigma_inf)
        torch.testing.assert_close(step.denoised, expected, atol=1e-5, rtol=0)


def test_the_callback_sees_the_recorded_noise_run_as_the_golden_case_does():
    """A stochastic run fed recorded noise gives the same result with and without a callback."""
    _, mu, x_T = problem()
    draws = [torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(k)) for k in range(6)]
    sampler = build_sampler("posterior", SDE, {"num_sample_steps": 6})
    oracle = GaussianOracle(SDE, problem()[0], 0.15, "noise")
    a = sampler.sample(oracle, x_T, mu, noise=RecordedNoise(draws))
    b = sampler.sample(oracle, x_T, mu, noise=RecordedNoise(draws), callback=lambda step: None)
    assert torch.equal(a.x, b.x)
