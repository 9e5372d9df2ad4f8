"""MR Sampler's options beyond the reference (issue 15): the final-step order, the UniC corrector
and the integer-lambda grid. Their plans and coefficients are checked against their definitions,
their orders on the exact Gaussian oracle against the theory, and their validation errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from helpers import REPO, load_script

from uir.models.networks import build_network
from uir.options import load_options

from uir.samplers import MRSampler, MRSamplerOptions, build_sampler
from uir.samplers.grids import mr_time_grid
from uir.samplers.reference import solve_probability_flow
from uir.samplers.unic import phi, unic_coefficients
from uir.sde import IRSDE
from uir.sde.mixture_oracle import MixtureOracle
from uir.sde.oracle import GaussianOracle
from test_sampler_oracle import assert_standard_normal, observed_order, ode_error, oracle_problem, sample_z

SDE = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)


def plan(M: int, **cfg) -> list[tuple[int, int]]:
    return MRSampler(SDE, cfg).plan(M)


def test_the_reference_plan_is_kept_by_default():
    # warm-up, the order capped by the steps left when M < 10, and the last step at full order
    assert plan(5, order=3) == [(1, 1), (2, 2), (3, 2), (4, 1), (5, 3)]
    assert plan(12, order=2) == [(1, 1)] + [(i, 2) for i in range(2, 13)]


def test_lower_order_final_caps_every_order_by_the_steps_left():
    assert plan(5, order=3, lower_order_final=True) == [(1, 1), (2, 2), (3, 3), (4, 2), (5, 1)]
    assert plan(12, order=2, lower_order_final=True) == [(1, 1)] + [(i, 2) for i in range(2, 12)] + [(12, 1)]
    # with denoise_last the solver's last step is to M - 1
    assert plan(5, order=3, lower_order_final=True, denoise_last=True) == [(1, 1), (2, 2), (3, 2), (4, 1)]


def test_final_order_sets_the_last_step_only():
    assert plan(12, order=3, final_order=1)[-2:] == [(11, 3), (12, 1)]
    assert plan(5, order=3, lower_order_final=True, final_order=2)[-1] == (5, 2)


@pytest.mark.parametrize("z", [-2.5, -0.3, -1e-4, 1e-4, 0.7, 3.0])
def test_phi_functions_satisfy_their_recurrence(z):
    assert phi(1, z) == pytest.approx(math.expm1(z) / z, rel=1e-12)
    for k in (1, 2, 3):
        assert phi(k + 1, z) == pytest.approx((phi(k, z) - 1 / math.factorial(k)) / z, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("parameterization", ["data", "noise"])
@pytest.mark.parametrize("p", [1, 2, 3])
def test_unic_integrates_polynomials_of_degree_p_exactly(parameterization, p):
    """The corrected step is exact when d(lambda) is a polynomial of degree <= p: its
    correction sum_m c_m (d_m - d_0) then equals the exact remainder of the exponential
    integral, sum_{k>=1} h^{k+1} phi_{k+1}(z) d^(k)(lambda_{i-1}) (uir.samplers.unic)."""
    lam = [1.9, 1.2, 0.8, 0.1][: p + 1]  # lambda_i, lambda_{i-1}, then older points
    h = lam[0] - lam[1]
    z = -h if parameterization == "data" else h
    rng = np.random.default_rng(p)
    coef = rng.normal(size=p + 1)  # d(lambda) = sum_j coef_j (lambda - lambda_{i-1})^j
    d = lambda x: sum(c * (x - lam[1]) ** j for j, c in enumerate(coef))  # noqa: E731
    exact = sum(h ** (k + 1) * phi(k + 1, z) * math.factorial(k) * coef[k] for k in range(1, p + 1))
    points = [*lam[2:], lam[0]]  # the older points first, the new one last
    for variant in ("unic", "unic-bh1", "unic-bh2"):
        c = unic_coefficients(lam, parameterization, variant)
        got = sum(cm * (d(x) - d(lam[1])) for cm, x in zip(c, points))
        if p == 1 and variant != "unic":
            # UniPC's one-point corrector: a_1 = 1/2 matches phi_2's leading term only
            assert got == pytest.approx(exact, rel=0.5)
            assert got != pytest.approx(exact, rel=1e-6)
        else:
            assert got == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("block, message", [
    ({"corrector": "unipc"}, r"sampler.corrector: 'unipc' is not valid.*valid values: none, unic, unic-bh1, unic-bh2"),
    ({"corrector": "unic", "solver_type": "sde"}, r"sampler.corrector: 'unic' corrects ODE steps only.*set corrector: none or solver_type: ode"),
    ({"final_order": 3, "order": 2}, r"sampler.final_order: must lie between 1 and sampler.order \(2\), got 3"),
    ({"final_order": 0}, r"sampler.final_order: must be >= 1"),
    ({"lower_order_final": "yes"}, r"sampler.lower_order_final: expected true or false"),
    ({"time_schedule": "integer-lambd"}, r"did you mean 'integer-lambda'"),
])
def test_invalid_new_options_name_the_key_and_the_valid_values(block, message):
    with pytest.raises(ValueError, match=message):
        build_sampler("mrsampler", SDE, block)


def test_the_defaults_of_the_new_options_are_the_references():
    cfg = MRSamplerOptions()
    assert (cfg.lower_order_final, cfg.final_order, cfg.corrector) == (False, None, "none")


# ---- orders on the exact Gaussian oracle (T = 1000, NFE dividing T: every point on IR-SDE's grid) ----

@pytest.fixture(scope="module")
def problem_1000():
    return oracle_problem(T=1000)


def order_of(problem, nfes=(100, 200), **cfg) -> tuple[float, list[float]]:
    sde, m, S, mu, x_T = problem
    errors = [ode_error(sde, m, S, mu, x_T, num_sample_steps=n, fit_target="noise", time_schedule="linspace", **cfg)
              for n in nfes]
    return observed_order(errors, list(nfes)), errors


@pytest.mark.parametrize("parameterization", ["data", "noise"])
@pytest.mark.parametrize("p", [1, 2])
def test_the_corrector_raises_the_observed_order_by_one(problem_1000, parameterization, p):
    """UniPC: UniC on a predictor of order p gives order p + 1 (measured: data 1.96 and 2.90,
    noise 2.00 and 2.75, against 0.99 / 2.29 and 0.99 / 1.93 without). With p = 3 the first,
    lower-order steps and the last step in lambda, which does not shrink on a linspace grid,
    hide the fourth order (measured 3.5 with and 3.8 without)."""
    plain, _ = order_of(problem_1000, order=p, parameterization=parameterization)
    for variant in ("unic", "unic-bh1", "unic-bh2"):
        corrected, errors = order_of(problem_1000, order=p, parameterization=parameterization, corrector=variant)
        assert corrected > p + 0.6 and corrected > plain + 0.4, (variant, plain, corrected, errors)


def test_lower_order_final_keeps_order_two(problem_1000):
    """The last step at order 1 has a local error O(h^2): the global order is min(order, 2)."""
    observed, errors = order_of(problem_1000, order=2, parameterization="data", lower_order_final=True)
    assert 1.75 < observed < 2.5, errors


@pytest.mark.parametrize("parameterization", ["data", "noise"])
def test_lower_order_final_works_for_the_sde_solver(parameterization):
    z, _, _ = sample_z("mrsampler", 100, dict(num_sample_steps=500, solver_type="sde", order=2, lower_order_final=True,
                                             parameterization=parameterization, fit_target="noise"))
    assert_standard_normal(z, std_slack=0.01)


# ---- the integer-lambda grid --------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 5, 10, 20, 60, 100])
def test_integer_lambda_is_uniform_lambda_on_distinct_integer_times(n):
    times = mr_time_grid(SDE, "integer-lambda", n)
    assert len(times) == n + 1 and times[0] == SDE.T and times[-1] == 0
    assert torch.equal(times, times.round()) and bool((times[:-1] > times[1:]).all())
    target = mr_time_grid(SDE, "linear-lambda", n).round()
    if bool((target[:-1] > target[1:]).all()):  # nothing merged: the rounded uniform-lambda grid itself
        assert torch.equal(times, target)
    # on IR-SDE's own times the sampler reads its arrays exactly
    _, alphas, sigmas, lambdas = MRSampler(SDE, MRSamplerOptions(num_sample_steps=n, order=1, time_schedule="integer-lambda")).grid()
    k = times.long()
    assert torch.equal(alphas, SDE.alphas[k]) and torch.equal(sigmas, SDE.sigma_bars[k]) and torch.equal(lambdas, SDE.lambdas[k])


def test_integer_lambda_with_more_steps_than_times_is_an_error():
    with pytest.raises(ValueError, match=r"'integer-lambda': 101 steps do not fit between the integer times 100 and 0"):
        build_sampler("mrsampler", SDE, {"num_sample_steps": 101, "time_schedule": "integer-lambda"})


# ---- the exact references: the mixture oracle and the converged ODE solution ----------------------

def test_a_one_template_mixture_is_the_gaussian_oracle():
    g = torch.Generator().manual_seed(0)
    c = torch.rand(1, 3, 4, 4, generator=g)
    mu, x = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    for target in ("noise", "data", "velocity"):
        for t in (0.5, 30.0, 100.0):
            torch.testing.assert_close(MixtureOracle(SDE, c, 0.05, target)(x.double(), mu, t),
                                       GaussianOracle(SDE, c.expand(2, -1, -1, -1), 0.05, target)(x.double(), mu, t),
                                       atol=1e-12, rtol=0)


def test_the_mixture_posterior_picks_the_template_a_nearly_clean_image_came_from():
    g = torch.Generator().manual_seed(1)
    templates = torch.rand(5, 3, 8, 8, generator=g)
    oracle = MixtureOracle(SDE, templates, 0.02, "data")
    mu = torch.rand(5, 3, 8, 8, generator=g).double()
    x0 = templates.double() + 0.02 * torch.randn(5, 3, 8, 8, generator=g, dtype=torch.float64)
    a, s = oracle.a_s(2.0)
    x_t = a * x0 + (1 - a) * mu + s * torch.randn(5, 3, 8, 8, generator=g, dtype=torch.float64)
    pi = oracle.weights(x_t, mu, a, s)
    torch.testing.assert_close(pi.sum(1), torch.ones(5, dtype=torch.float64))
    assert torch.equal(pi.argmax(1), torch.arange(5)) and bool((pi.max(1).values > 0.999).all())
    a, s = oracle.a_s(100.0)  # at t = T the data is nearly forgotten: no template stands out
    assert float(oracle.weights(x_t, mu, a, s).max()) < 0.9


def test_the_reference_solver_converges_to_the_closed_form_ode_solution():
    sde, m, S, mu, x_T = oracle_problem(T=100, S=0.1)
    oracle = GaussianOracle(sde, m, S)
    exact = oracle.ode_solution(x_T, mu, 100.0, 0.0)
    errors = [(solve_probability_flow(lambda x, t, a, s: oracle.predictions(x, mu, a, s)[1], x_T, mu, sde,
                                      substeps=k) - exact).pow(2).mean().sqrt().item() for k in (1, 2, 4)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-5, errors


# ---- the fast preset ----------------------------------------------------------------------------

def test_the_fast_preset_is_mrsampler_yml_with_another_sampler_block():
    fast = load_options(REPO / "options" / "mrsampler_fast.yml").to_dict()
    reference = load_options(REPO / "options" / "mrsampler.yml").to_dict()
    same = lambda opts: {k: v for k, v in opts.items() if k not in ("sampler", "sweep")}  # noqa: E731
    assert same(fast) == same(reference)  # the sweep follows sampler.num_sample_steps
    s = fast["sampler"]
    assert (s["solver_type"], s["order"], s["parameterization"], s["time_schedule"], s["final_order"], s["corrector"]) == (
        "ode", 3, "data", "integer-lambda", 1, "unic")


@pytest.mark.parametrize("nfe", [5, 10, 20, 50])
def test_the_fast_preset_is_at_least_as_accurate_as_the_default_on_the_gaussian_oracle(nfe):
    """As in docs/sampler_study.md (problem 1, smaller), with every fit target."""
    sde, m, S, mu, x_T = oracle_problem(T=100, S=0.1, shape=(1, 3, 16, 16), seed=2)
    fast, default = (shipped_sampler_block(name) for name in ("mrsampler_fast.yml", "mrsampler.yml"))
    for target in ("noise", "data", "velocity"):
        errors = [ode_error(sde, m, S, mu, x_T, **dict(block, num_sample_steps=nfe, fit_target=target))
                  for block in (fast, default)]
        assert errors[0] <= errors[1], (target, errors)


def shipped_sampler_block(name: str) -> dict:
    block = dict(yaml.safe_load((REPO / "options" / name).read_text())["sampler"])
    block.pop("num_sample_steps")
    return block


def test_the_fast_preset_runs_end_to_end_through_test_py(tmp_path, monkeypatch, capsys):
    """options/mrsampler_fast.yml as shipped, with a tiny random network in place of universal-ir.pth
    (which cannot be downloaded here) and without DA-CLIP, on one demo photo."""
    monkeypatch.chdir(REPO)
    setting = dict(in_nc=3, out_nc=3, nf=8, ch_mult=[1, 2], context_dim=0, use_degra_context=False, use_image_context=False)
    torch.manual_seed(0)
    torch.save(build_network("ConditionalUNet", setting).state_dict(), tmp_path / "tiny.pth")
    sets = [f"network_G.setting.{k}={json.dumps(v)}" for k, v in setting.items()]
    sets += [f"path.pretrain_model_G={tmp_path / 'tiny.pth'}", "path.daclip=~"]
    args = ["-opt", "options/mrsampler_fast.yml", "--data-root", "demo/test", "--dataset", "noisy", "--max-images", "1",
            "--nfe", "5", "10", "--results-root", str(tmp_path), "--no-lpips", "--device", "cpu", "--num-workers", "0"]
    assert load_script("test.py").main(args + [a for s in sets for a in ("--set", s)]) == 0
    assert "| noisy | mrsampler | mrsampler | 10 |" in capsys.readouterr().out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    resolved = yaml.safe_load((run_dir / "options.yml").read_text())["sampler"]
    assert {k: resolved[k] for k in ("order", "time_schedule", "final_order", "corrector")} == {
        "order": 3, "time_schedule": "integer-lambda", "final_order": 1, "corrector": "unic"}


def test_the_study_script_writes_its_table_and_plot(tmp_path):
    """scripts/sampler_study.py --quick: the same code as the full study on tiny problems."""
    text = load_script("scripts/sampler_study.py").main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "sampler_study.png").stat().st_size > 0
    assert (tmp_path / "sampler_study.md").read_text() == text
    for row in ("| gaussian |", "| mixture |", "| demo |", "| preset: mrsampler_fast.yml |", "Demo PSNR at NFE 10"):
        assert row in text
