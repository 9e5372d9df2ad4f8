"""Samplers against the exact Gaussian oracle, independently of the reference's records:
convergence order of the MR Sampler ODE, exact round trips between prediction targets,
and the output distribution of the stochastic samplers."""
from __future__ import annotations

import math

import pytest
import torch

import numpy as np

from uir.samplers import build_sampler
from uir.sde import IRSDE, interp
from uir.sde.oracle import GaussianOracle
from uir.sde.predictions import to_data, to_noise, velocity_from


def oracle_problem(T: int, S: float = 0.15, shape=(2, 3, 16, 16), seed: int = 0):
    sde = IRSDE.create(max_sigma=50, T=T, schedule="cosine", eps=0.005)
    g = torch.Generator().manual_seed(seed)
    m = 0.3 + 0.4 * torch.rand(shape, generator=g)
    mu = torch.rand(shape, generator=g)
    x_T = mu + sde.sigma_inf * torch.randn(shape, generator=g)
    return sde, m, S, mu.double(), x_T.double()


def ode_error(sde, m, S, mu, x_T, **cfg) -> float:
    """Max error at t = 0 against the closed-form ODE solution (float64 state)."""
    oracle = GaussianOracle(sde, m, S, cfg.get("fit_target", "noise"))
    result = build_sampler("mrsampler", sde, dict(cfg, solver_type="ode")).sample(oracle, x_T.clone(), mu)
    exact = oracle.ode_solution(x_T, mu, result.timesteps[0], 0.0).clamp(0, 1)
    return (result.x - exact).abs().max().item()


def observed_order(errors: list[float], nfes: list[int]) -> float:
    return math.log(errors[0] / errors[1]) / math.log(nfes[1] / nfes[0])


@pytest.mark.parametrize("parameterization", ["noise", "data"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_ode_converges_at_its_order_on_an_integer_grid(parameterization, order):
    # T = 1000 and NFE dividing T put every grid point on IR-SDE's own integer times, where
    # alpha, sigma and lambda are mutually consistent; there the exponential integrators
    # show their textbook order.
    sde, m, S, mu, x_T = oracle_problem(T=1000)
    nfes = [100, 200]
    errors = [ode_error(sde, m, S, mu, x_T, num_sample_steps=n, order=order, parameterization=parameterization,
                        fit_target="noise", time_schedule="linspace") for n in nfes]
    assert errors[1] < errors[0]
    assert observed_order(errors, nfes) > order - 0.25, errors


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("fit_target", ["noise", "data", "velocity"])
def test_data_prediction_converges_on_linear_lambda(order, fit_target):
    # Linear-lambda grid points fall between integer times, where the reference interpolates
    # alpha, sigma and lambda separately; that inconsistency sets an error floor (~1e-5 at
    # T = 1000) which hides a third order, so orders 1 and 2 are checked here.
    sde, m, S, mu, x_T = oracle_problem(T=1000)
    nfes = [160, 320]
    errors = [ode_error(sde, m, S, mu, x_T, num_sample_steps=n, order=order, parameterization="data",
                        fit_target=fit_target, time_schedule="linear-lambda") for n in nfes]
    assert observed_order(errors, nfes) > order - 0.25, errors


def test_higher_order_beats_lower_order_at_the_same_nfe():
    sde, m, S, mu, x_T = oracle_problem(T=100)
    errs = [ode_error(sde, m, S, mu, x_T, num_sample_steps=20, order=k, parameterization="noise", fit_target="noise",
                      time_schedule="linspace") for k in (1, 2, 3)]
    assert errs[1] < errs[0] / 10 and errs[2] < errs[0] / 10, errs


@pytest.mark.parametrize("t", [1, 17, 50, 99, 100])
def test_prediction_conversions_round_trip_exactly(t):
    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    g = torch.Generator().manual_seed(t)
    x0, mu, eps = (torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    alpha = sde.alphas.double()[t].item()
    sigma = sde.sigma_bars.double()[t].item()
    # On IR-SDE's own grid sigma^2 = sigma_inf^2 (1 - alpha^2); use the float64 identity.
    sigma = sde.sigma_inf * math.sqrt(1 - alpha**2)
    x_t = alpha * x0 + (1 - alpha) * mu + sigma * eps
    v = velocity_from(eps, x0, mu, alpha, sigma, sde.sigma_inf)
    args = (x_t, mu, alpha, sigma, sde.sigma_inf)
    for target, out in (("noise", eps), ("data", x0), ("velocity", v)):
        torch.testing.assert_close(to_data(out, target, *args), x0, atol=1e-10, rtol=0)
        torch.testing.assert_close(to_noise(out, target, *args), eps, atol=1e-10, rtol=0)


def test_interpolation_is_exact_on_knots_linear_between_and_numpys_in_float64():
    sde = IRSDE.create(max_sigma=50, T=37, schedule="cosine", eps=0.005)
    knots = sde.timeline
    for array in (sde.alphas, sde.sigma_bars, sde.lambdas, sde.thetas):
        assert torch.equal(sde.at(array, knots), array)  # on every knot, the last included
        t = torch.tensor([0.25, 3.5, 36.75], dtype=torch.float32)
        k = t.floor().long()
        w = (t - k).double()
        torch.testing.assert_close(sde.at(array, t).double(), (1 - w) * array[k].double() + w * array[k + 1].double(),
                                   atol=0, rtol=1e-6)
    # float64 in [0, T]: numpy.interp to the last bit (the Gaussian oracle's golden definition)
    t = np.random.default_rng(0).uniform(0, 37, 1000)
    a = sde.alphas.double()
    assert np.array_equal(interp(torch.from_numpy(t), knots.double(), a).numpy(), np.interp(t, knots.double().numpy(), a.numpy()))
    # beyond the ends the outermost segments are extended
    assert interp(torch.tensor([-1.0, 3.0]), torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 4.0])).tolist() == [-1.0, 7.0]


def test_unknown_fit_target_is_named():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="fit_target.*'score'.*noise, data, velocity"):
        to_data(x, "score", x, x, 0.5, 0.5, 0.2)


# ---- stochastic samplers: distribution of (x_0 - m) / S ------------------------------------

def sample_z(name: str, T: int, cfg: dict, seed: int = 1, S: float = 0.1):
    """Start from the exact marginal at T and return z = (x - m) / S per pixel (12,288 draws)."""
    sde = IRSDE.create(max_sigma=50, T=T, schedule="cosine", eps=0.005)
    g = torch.Generator().manual_seed(0)
    shape = (1, 3, 64, 64)
    m = 0.45 + 0.1 * torch.rand(shape, generator=g)  # far from the [0, 1] clip
    mu = torch.rand(shape, generator=g)
    oracle = GaussianOracle(sde, m, S)
    mean_T, std_T = oracle.mean_std(mu, T)
    x_T = (mean_T + std_T * torch.randn(shape, generator=g, dtype=torch.float64)).float()
    result = build_sampler(name, sde, cfg).sample(oracle, x_T, mu, noise=torch.Generator().manual_seed(seed))
    return ((result.x.double() - m.double()) / S).flatten(), sde, S


def assert_standard_normal(z: torch.Tensor, std_slack: float):
    n = z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n), z.mean().item()
    assert abs(z.std().item() - 1) < 5 / math.sqrt(2 * n) + std_slack, z.std().item()


@pytest.mark.parametrize("parameterization", ["data", "noise"])
@pytest.mark.parametrize("order", [1, 2])
def test_mr_sde_solver_samples_the_data_distribution(parameterization, order):
    z, _, _ = sample_z("mrsampler", 100, dict(num_sample_steps=500, solver_type="sde", order=order,
                                             parameterization=parameterization, fit_target="noise"))
    assert_standard_normal(z, std_slack=0.01)


def test_euler_maruyama_samples_the_data_distribution():
    z, _, _ = sample_z("sde", 1000, dict(num_sample_steps=1000))
    assert_standard_normal(z, std_slack=0.01)


def test_heun_sde_with_corrected_score_samples_the_data_distribution():
    z, _, _ = sample_z("heun", 1000, dict(num_sample_steps=1000, solver_type="sde", corrected_score=True))
    assert_standard_normal(z, std_slack=0.015)
    # The reference's score (-eps / g) over-disperses; the correction is what fixes it.
    z_ref, _, _ = sample_z("heun", 1000, dict(num_sample_steps=1000, solver_type="sde"))
    assert z_ref.std().item() > 1.1


def test_posterior_sampling_matches_its_exact_linear_gaussian_recursion():
    """With the exact E[x_0 | x_t] the posterior sampler is a linear-Gaussian chain, so its
    output variance is known in closed form. It is below the data's (the point estimate of
    x_0 drops Var[x_0 | x_t]): the test pins that the sampler draws exactly that law."""
    z, sde, S = sample_z("posterior", 100, dict(num_sample_steps=100))
    alpha = sde.alphas.double()
    sigma_bar = sde.sigma_bars.double()
    w_xt, w_x0 = (w.double() for w in sde.posterior_weights)
    std = sde.posterior_stds.double()
    var = (alpha[-1] ** 2 * S**2 + sigma_bar[-1] ** 2).item()
    for t in range(sde.T, 0, -1):
        gain = alpha[t] * S**2 / (alpha[t] ** 2 * S**2 + sigma_bar[t] ** 2)  # d E[x0 | x_t] / d x_t
        var = ((w_xt[t] + w_x0[t] * gain) ** 2 * var + std[t] ** 2).item()
    expected_std = math.sqrt(var) / S
    n = z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.std().item() - expected_std) < 5 * expected_std / math.sqrt(2 * n)
    assert expected_std < 0.97  # the known shortfall, so this test is not the one above again
