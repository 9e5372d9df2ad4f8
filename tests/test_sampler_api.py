"""The sampler registry, its validation errors, reproducibility, NFE counting and isolation."""
from __future__ import annotations

import pytest
import torch

from uir.samplers import SAMPLERS, HeunOptions, HeunSampler, MRSampler, PerSampleNoise, RecordedNoise, build_sampler
from uir.sde import IRSDE
from uir.sde.oracle import GaussianOracle

SDE = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)


def problem(batch=2):
    g = torch.Generator().manual_seed(3)
    m = 0.3 + 0.4 * torch.rand(batch, 3, 8, 8, generator=g)
    mu = torch.rand(batch, 3, 8, 8, generator=g)
    return GaussianOracle(SDE, m, 0.15), mu, mu + SDE.sigma_inf * torch.randn(batch, 3, 8, 8, generator=g)


@pytest.mark.parametrize(
    "name, block, message",
    [
        ("euler", {}, r"sde.algorithm: 'euler' is not valid.*valid values: sde, posterior, heun, mrsampler"),
        ("mrsampler", {"solver_type": "pde"}, r"sampler.solver_type: 'pde' is not valid.*ode, sde"),
        ("mrsampler", {"time_schedule": "cosine"}, r"sampler.time_schedule: 'cosine'.*linspace, leading, trailing, karras-n, karras-t, linear-lambda"),
        ("mrsampler", {"parameterization": "score"}, r"sampler.parameterization: 'score'.*data, noise"),
        ("mrsampler", {"fit_target": "x0"}, r"sampler.fit_target: 'x0'.*noise, data, velocity"),
        ("mrsampler", {"solver_type": "sde", "order": 3}, r"sampler.order: 3 is not available with solver_type 'sde'; valid orders: 1, 2"),
        ("mrsampler", {"order": 4}, r"sampler.order: 4 is not available with solver_type 'ode'; valid orders: 1, 2, 3"),
        ("mrsampler", {"thresholding": True, "parameterization": "noise"}, r"sampler.thresholding.*parameterization 'data'"),
        ("mrsampler", {"num_sample_steps": 0}, r"sampler.num_sample_steps: must be >= 1"),
        ("posterior", {"num_sample_steps": 0}, r"sampler.num_sample_steps: must be >= 1"),
        ("mrsampler", {"num_sample_step": 10}, r"sampler.num_sample_step: unknown key \(did you mean 'num_sample_steps'\?\)"),
        ("mrsampler", {"order": 3, "num_sample_steps": 2}, r"sampler.order: order 3 needs num_sample_steps >= 3 \(got 2\); use order 1 or 2"),
        ("mrsampler", {"order": 2, "num_sample_steps": 1}, r"sampler.order: order 2 needs num_sample_steps >= 2 \(got 1\); use order 1"),
        ("mrsampler", {"order": 2, "num_sample_steps": 1, "denoise_last": True}, r"order 2 needs num_sample_steps >= 2"),
        ("mrsampler", {"threshold_ratio": 1.5}, r"sampler.threshold_ratio: must lie in \[0, 1\]"),
        ("mrsampler", {"denoise_last": "yes"}, r"sampler.denoise_last: expected true or false"),
    ],
)
def test_invalid_options_name_the_key_and_the_valid_values(name, block, message):
    with pytest.raises(ValueError, match=message):
        build_sampler(name, SDE, block)


def test_bad_sde_settings_are_named():
    with pytest.raises(ValueError, match=r"sde.schedule: 'cosin' is not valid \(did you mean 'cosine'\?\); valid values: cosine, linear, constant"):
        IRSDE.create(max_sigma=50, T=100, schedule="cosin")
    with pytest.raises(ValueError, match="sde.eps"):
        IRSDE.create(max_sigma=50, T=100, eps=0)
    with pytest.raises(ValueError, match="sde.T"):
        IRSDE.create(max_sigma=50, T=0)


def test_yaml_strings_for_infinity_are_numbers():
    assert MRSampler.options_from({"lambda_min": "-inf"}).lambda_min == float("-inf")


@pytest.mark.parametrize("name, cfg", [
    ("sde", {"num_sample_steps": 7}),
    ("posterior", {"num_sample_steps": 7}),
    ("heun", {"num_sample_steps": 7, "solver_type": "sde"}),
    ("mrsampler", {"num_sample_steps": 7, "solver_type": "sde", "fit_target": "noise"}),
])
def test_seeded_runs_are_reproducible_and_seeds_matter(name, cfg):
    oracle, mu, x_T = problem()
    sampler = build_sampler(name, SDE, cfg)
    a = sampler.sample(oracle, x_T, mu, noise=torch.Generator().manual_seed(5)).x
    b = sampler.sample(oracle, x_T, mu, noise=torch.Generator().manual_seed(5)).x
    c = sampler.sample(oracle, x_T, mu, noise=torch.Generator().manual_seed(6)).x
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_stochastic_sampler_without_noise_says_how_to_seed_it():
    oracle, mu, x_T = problem()
    with pytest.raises(ValueError, match="stochastic: pass noise=torch.Generator"):
        build_sampler("posterior", SDE, {"num_sample_steps": 3}).sample(oracle, x_T, mu)


def test_per_sample_noise_makes_results_independent_of_the_batch():
    oracle, mu, x_T = problem(batch=3)
    sampler = build_sampler("mrsampler", SDE, {"num_sample_steps": 6, "solver_type": "sde", "fit_target": "noise"})
    batch = sampler.sample(oracle, x_T, mu, noise=PerSampleNoise.from_seeds([10, 11, 12])).x
    for k, seed in enumerate([10, 11, 12]):
        single_oracle = GaussianOracle(SDE, oracle.m[k:k + 1].float(), 0.15)
        one = sampler.sample(single_oracle, x_T[k:k + 1], mu[k:k + 1], noise=PerSampleNoise.from_seeds([seed])).x
        torch.testing.assert_close(one, batch[k:k + 1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name, cfg, nfe", [
    ("sde", {"num_sample_steps": 9}, 9),
    ("posterior", {"num_sample_steps": 9}, 9),
    ("heun", {"num_sample_steps": 9, "solver_type": "ode"}, 9),
    ("mrsampler", {"num_sample_steps": 9, "order": 3, "fit_target": "noise"}, 9),
    ("mrsampler", {"num_sample_steps": 9, "denoise_last": True, "fit_target": "noise"}, 9),
])
def test_nfe_counts_network_calls(name, cfg, nfe):
    oracle, mu, x_T = problem()
    calls = []

    def model(x, mu_, t, **kw):
        calls.append(t)
        return oracle(x, mu_, t, **kw)

    result = build_sampler(name, SDE, cfg).sample(model, x_T, mu, noise=torch.Generator().manual_seed(0))
    assert result.model_calls == len(calls) == nfe


def test_building_a_sampler_changes_no_other_sampler():
    oracle, mu, x_T = problem()
    heun = build_sampler("heun", SDE, {"num_sample_steps": 6, "solver_type": "ode"})
    before = heun.sample(oracle, x_T, mu).x
    build_sampler("mrsampler", SDE, {"num_sample_steps": 6, "order": 3, "parameterization": "noise"})
    posterior = build_sampler("posterior", SDE, {"num_sample_steps": 6})
    posterior.sample(oracle, x_T, mu, noise=torch.Generator().manual_seed(0))
    assert torch.equal(heun.sample(oracle, x_T, mu).x, before)
    assert torch.equal(SDE.thetas, IRSDE.create(50, 100, "cosine", 0.005).thetas)


def test_recorded_noise_is_replayed_in_order():
    oracle, mu, x_T = problem()
    draws = [torch.randn_like(x_T) for _ in range(4)]
    sampler = build_sampler("sde", SDE, {"num_sample_steps": 4})
    replay = sampler.sample(oracle, x_T, mu, noise=RecordedNoise(draws)).x
    reversed_replay = sampler.sample(oracle, x_T, mu, noise=RecordedNoise(draws[::-1])).x
    assert not torch.equal(replay, reversed_replay)


def test_reduced_precision_network_output_leaves_the_sampler_in_float32():
    oracle, mu, x_T = problem()

    def bf16_model(x, mu_, t, **kw):
        return oracle(x, mu_, t, **kw).to(torch.bfloat16)

    result = build_sampler("mrsampler", SDE, {"num_sample_steps": 5, "fit_target": "noise"}).sample(bf16_model, x_T, mu)
    assert result.x.dtype == torch.float32


@pytest.mark.parametrize("name, cfg", [
    ("sde", {"num_sample_steps": 8}),
    ("posterior", {"num_sample_steps": 8}),
    ("heun", {"num_sample_steps": 8, "solver_type": "sde"}),
    ("heun", {"num_sample_steps": 7, "solver_type": "ode"}),
])
@pytest.mark.parametrize("target", ["data", "velocity"])
def test_noise_samplers_take_data_and_velocity_networks(name, cfg, target):
    """sde, posterior and heun are written in noise; a network trained on another target gets
    its output converted, so the same exact predictor gives the same samples."""
    oracle, mu, x_T = problem()
    as_noise = build_sampler(name, SDE, dict(cfg, fit_target="noise")).sample(
        oracle, x_T, mu, noise=torch.Generator().manual_seed(1)).x
    other = build_sampler(name, SDE, dict(cfg, fit_target=target)).sample(
        oracle.with_target(target), x_T, mu, noise=torch.Generator().manual_seed(1)).x
    torch.testing.assert_close(other, as_noise, atol=2e-4, rtol=0)


def test_unset_fit_target_follows_the_reference_defaults():
    assert build_sampler("mrsampler", SDE, {}).fit_target == "data"
    assert {build_sampler(n, SDE, {}).fit_target for n in ("sde", "posterior", "heun")} == {"noise"}
    assert build_sampler("posterior", SDE, {"fit_target": "velocity"}).fit_target == "velocity"


def test_a_sampler_reads_only_its_own_keys_from_the_flat_block():
    """The reference's `sampler:` block holds MR Sampler's keys whatever the sampler: each sampler
    takes its own, a key no sampler reads is an error."""
    block = {"num_sample_steps": 6, "solver_type": "sde", "order": 3, "fit_target": "noise"}
    assert build_sampler("posterior", SDE, block).config == build_sampler("posterior", SDE, {"num_sample_steps": 6,
                                                                                              "fit_target": "noise"}).config
    assert build_sampler("heun", SDE, block).config == HeunOptions(num_sample_steps=6, fit_target="noise",
                                                                   solver_type="sde")
    with pytest.raises(ValueError, match="sampler.order: 3 is not available with solver_type 'sde'"):
        build_sampler("mrsampler", SDE, block)
    with pytest.raises(ValueError, match=r"sampler.orderr: unknown key \(did you mean 'order'\?\)"):
        build_sampler("posterior", SDE, {"orderr": 2})


def test_the_registry_names_every_sampler_class_by_its_own_name():
    assert list(SAMPLERS)[:4] == ["sde", "posterior", "heun", "mrsampler"]
    assert all(cls.name == name for name, cls in SAMPLERS.items())
    assert build_sampler("sde", SDE, {}).integer_steps and build_sampler("heun", SDE, {}).integer_steps
    assert not build_sampler("heun", SDE, {"corrected_step_size": True}).integer_steps
    assert not build_sampler("mrsampler", SDE, {}).integer_steps


def test_heun_has_one_default_solver_type():
    assert HeunSampler(SDE, {"num_sample_steps": 4}).config.solver_type == HeunOptions().solver_type == "ode"
    assert not build_sampler("heun", SDE, {"num_sample_steps": 4}).stochastic


def test_heun_interpolates_its_coefficients_in_float32():
    """The reference interpolates Heun's theta and g at float32 times in float32; at NFE 7 the
    grid falls between integer times, where float64 would give values float32 cannot hold."""
    times, theta, g, denom = HeunSampler(SDE, {"num_sample_steps": 7, "corrected_score": True}).coefficients()
    assert any(t != int(t) for t in times)
    for values in (theta, g, denom):
        assert torch.equal(torch.tensor(values, dtype=torch.float64), torch.tensor(values).double())
    assert g == SDE.at(SDE.sigmas, torch.tensor(times, dtype=torch.float32)).tolist()
