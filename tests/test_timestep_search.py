"""Issue 22: `time_schedule: custom` with `timesteps:`, and the time steps searched for a model
(`uir.samplers.search_timesteps`), scored on draws it was not calibrated on."""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from uir.evaluation import read_csv
from uir.options import parse_options
from uir.samplers import MRSampler, build_sampler, find_timesteps, search_timesteps
from uir.samplers.grids import mr_time_grid
from uir.samplers.search import (OBJECTIVES, Lambda, batch_error, pattern_search, search_options, start_grids,
                                 step_ratio_bound)
from uir.samplers.search_target import NOISE_DRAWS, Teacher, converged_ode, prior_draws, reference_solution
from uir.samplers.reference import solve_probability_flow
from uir.sde import IRSDE
from uir.sde.mixture_oracle import MixtureOracle
from uir.sde.oracle import GaussianOracle
from workspace import make_workspace, raw_options

REPO = Path(__file__).resolve().parents[1]
PAPER = {"solver_type": "ode", "parameterization": "data", "order": 2, "lambda_min": -5.0, "time_schedule": "linspace"}
FAST = {"solver_type": "ode", "parameterization": "data", "order": 3, "lambda_min": -5.0,
        "time_schedule": "integer-lambda", "final_order": 1, "corrector": "unic"}


@pytest.fixture(scope="module")
def sde() -> IRSDE:
    return IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)


def draws(sde: IRSDE, seed: int, shape=(4, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    mu = torch.rand(shape, generator=g)
    return mu, sde.prior_sample(mu, torch.randn(shape, generator=g))


def rmse(a, b) -> float:
    return (a.double() - b.double()).pow(2).mean().sqrt().item()


def sample(sde, oracle, block, nfe, x_T, mu):
    return build_sampler("mrsampler", sde, dict(block, num_sample_steps=nfe)).sample(oracle, x_T.clone(), mu).x


# ---- time_schedule: custom --------------------------------------------------------------------


def test_a_custom_grid_is_used_as_given_and_equals_the_built_in_grid_it_copies(sde):
    mu, x_T = draws(sde, 0)
    oracle = GaussianOracle(sde, torch.full_like(mu, 0.5), 0.1, "noise")
    linspace = build_sampler("mrsampler", sde, dict(PAPER, lambda_min=-math.inf, num_sample_steps=5))
    custom = build_sampler("mrsampler", sde, dict(PAPER, num_sample_steps=5, time_schedule="custom", lambda_min=-1.0,
                                                  timestep_offset=7, timesteps=linspace.timesteps()))
    assert custom.timesteps() == linspace.timesteps() == [100.0, 80.0, 60.0, 40.0, 20.0, 0.0]
    assert torch.equal(custom.sample(oracle, x_T, mu).x, linspace.sample(oracle, x_T, mu).x)
    by_nfe = build_sampler("mrsampler", sde, dict(PAPER, num_sample_steps=2, time_schedule="custom",
                                                  timesteps={2: [100, 30.5, 0], 5: [100, 80, 60, 40, 20, 0]}))
    assert by_nfe.timesteps() == [100.0, 30.5, 0.0] and by_nfe.settings()["schedule"] == "custom"
    assert by_nfe.sample(oracle, x_T, mu).model_calls == 2


@pytest.mark.parametrize("block, message", [
    ({"timesteps": [100, 50, 0]}, "sampler.timesteps: read only with time_schedule: custom (got 'linspace')"),
    ({"time_schedule": "custom"}, "sampler.timesteps: time_schedule custom needs the time points"),
    ({"time_schedule": "custom", "timesteps": [100, 50, 50, 0]}, "must decrease strictly; point 2 (50)"),
    ({"time_schedule": "custom", "timesteps": [100, 50, -1]}, "must lie in [0, T]; the last is -1"),
    ({"time_schedule": "custom", "timesteps": [120, 50, 20, 0]}, "must lie in [0, T = 100]; the first is 120"),
    ({"time_schedule": "custom", "timesteps": [100, "a", 0]}, "point 1 is not a finite number: 'a'"),
    ({"time_schedule": "custom", "timesteps": [100, 0]}, "2 time points give 1 steps, but num_sample_steps is 3"),
    ({"time_schedule": "custom", "timesteps": {2: [100, 50, 0]}}, "no grid for num_sample_steps=3 (NFE 3)"),
    ({"time_schedule": "custom", "timesteps": {3: [100, 50, 0]}}, "timesteps[3]: NFE 3 needs 4 time points"),
    ({"time_schedule": "custom", "timesteps": {"x": [100, 0]}}, "the map's keys are numbers of steps"),
])
def test_custom_grids_are_validated_naming_the_key(sde, block, message):
    with pytest.raises(ValueError) as err:
        build_sampler("mrsampler", sde, dict(PAPER, num_sample_steps=3, **block))
    assert message in str(err.value)


def test_test_py_samples_each_nfe_on_its_grid_and_writes_the_grids_back(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("uir_test_py", REPO / "test.py")
    test_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_py)
    ws = make_workspace(tmp_path)
    grids = {2: [100.0, 12.5, 0.0], 3: [100.0, 40.0, 7.25, 0.0]}
    raw = raw_options(ws, "runs", max_images=1, sampler={"num_sample_steps": 3, "fit_target": "noise", "order": 2,
                                                         "time_schedule": "custom", "timesteps": grids},
                      sweep={"runs": [{"sampler": "mrsampler", "nfe": 2}, {"sampler": "mrsampler", "nfe": 3}]})
    opt = tmp_path / "custom.yml"
    opt.write_text(yaml.safe_dump(raw))
    assert test_py.main([f"-opt={opt}"]) == 0
    written = yaml.safe_load((ws / "runs" / "t" / "options.yml").read_text())
    assert written["sampler"]["time_schedule"] == "custom" and written["sampler"]["timesteps"] == grids
    assert parse_options(written).restorer.sampler.given["timesteps"] == {n: tuple(g) for n, g in grids.items()}
    rows = [r for r in read_csv(ws / "runs" / "t" / "results.csv") if r["sampler"] == "mrsampler"]
    assert sorted((r["nfe"], r["model_calls"], r["schedule"]) for r in rows) == [(2, 2, "custom"), (3, 3, "custom")]


# ---- the search -------------------------------------------------------------------------------


def gaussian_case(sde):
    m = 0.45 + 0.1 * torch.rand((4, 3, 8, 8), generator=torch.Generator().manual_seed(9))
    oracle = GaussianOracle(sde, m, 0.1, "noise")
    return oracle, lambda x_T, mu: oracle.ode_solution(x_T, mu, float(sde.T), 0.0).clamp(0, 1)


def mixture_case(sde, target="velocity"):
    g = torch.Generator().manual_seed(3)
    templates = torch.rand((3, 3, 8, 8), generator=g)
    oracle = MixtureOracle(sde, templates, 0.05, target)

    def exact(x_T, mu):
        x0 = lambda x, t, a, s: oracle.predictions(x, mu.double(), a, s)[1]  # noqa: E731
        return solve_probability_flow(x0, x_T, mu, sde, substeps=4).clamp(0, 1)

    return oracle, exact


@pytest.mark.parametrize("case", [gaussian_case, mixture_case])
def test_the_searched_grid_beats_the_papers_and_the_presets_on_held_out_draws(sde, case):
    oracle, exact = case(sde)
    mu, x_T = draws(sde, 1)
    held_mu, held_x_T = draws(sde, 2)
    truth = exact(held_x_T, held_mu)
    block = dict(PAPER, fit_target=oracle.fit_target)
    for nfe in (5, 10):
        times = search_timesteps(sde, oracle, x_T, mu, nfe=nfe, config=block)
        assert len(times) == nfe + 1 and times[0] == 100.0 and all(b < a for a, b in zip(times, times[1:]))
        searched = rmse(sample(sde, oracle, dict(block, time_schedule="custom", timesteps=times), nfe,
                               held_x_T, held_mu), truth)
        paper = rmse(sample(sde, oracle, block, nfe, held_x_T, held_mu), truth)
        fast = rmse(sample(sde, oracle, dict(FAST, fit_target=oracle.fit_target), nfe, held_x_T, held_mu), truth)
        assert searched <= paper / 3 and searched <= fast, (nfe, searched, paper, fast)


def test_the_search_is_deterministic_counts_its_cost_and_refuses_what_it_cannot_do(sde):
    oracle, _ = gaussian_case(sde)
    mu, x_T = draws(sde, 1)
    block = dict(PAPER, fit_target="noise")
    a = find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, max_evaluations=40, reference_substeps=1)
    b = find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, max_evaluations=40, reference_substeps=1)
    assert a == b and a.evaluations <= 40 and a.error <= a.start_error
    # from each of the 4 starts per image (NOISE_DRAWS): the target, each grid tried, the own grid
    assert NOISE_DRAWS == 4 and a.model_calls == 4 * (100 * 1 + 4 * (a.evaluations + 1))
    with pytest.raises(ValueError, match="solver_type 'sde' samples"):
        search_timesteps(sde, oracle, x_T, mu, nfe=5, config=dict(block, solver_type="sde"))
    with pytest.raises(ValueError, match="nfe must be an integer >= 2"):
        search_timesteps(sde, oracle, x_T, mu, nfe=1, config=dict(block, order=1))


def test_a_shared_reference_gives_the_same_grid_without_solving_the_ode_again(sde):
    oracle, _ = gaussian_case(sde)
    mu, x_T = draws(sde, 1)
    block = dict(PAPER, fit_target="noise")
    alone = find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, max_evaluations=20, reference_substeps=1)
    reference = reference_solution(sde, oracle, x_T, mu, config=block, substeps=1)
    assert reference.model_calls == 4 * 100 and reference.fit_target == "noise" and len(reference.target) == 4 * 4
    shared = find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, max_evaluations=20, reference=reference)
    assert shared.timesteps == alone.timesteps and shared.error == alone.error
    assert shared.model_calls == alone.model_calls - 4 * 100
    with pytest.raises(ValueError, match="solved for a noise network with noise_draws=4, and this search is for "
                                         "a data network with noise_draws=4;"):
        find_timesteps(sde, oracle, x_T, mu, nfe=4, config=dict(block, fit_target="data"), reference=reference)
    with pytest.raises(ValueError, match="this search is for a noise network with noise_draws=1;"):
        find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, reference=reference, noise_draws=1)
    other_mu, other_x_T = draws(sde, 2)
    with pytest.raises(ValueError, match="from another x_T; compute it with reference_solution on this batch"):
        find_timesteps(sde, oracle, other_x_T, other_mu, nfe=4, config=block, reference=reference)


def test_the_calibration_batch_starts_from_its_x_T_and_more_prior_draws_of_each_image(sde):
    mu, x_T = draws(sde, 1)
    starts = prior_draws(sde, x_T, mu, 3)
    again = prior_draws(sde, x_T, mu, 3)  # a fixed seed
    assert len(starts) == 3 and starts[0] is x_T and all(torch.equal(a, b) for a, b in zip(starts, again))
    noise = [(s - mu) / sde.sigma_inf for s in starts[1:]]  # prior samples around each image's mu
    assert not torch.equal(noise[0], noise[1]) and all(abs(n.std().item() - 1) < 0.15 for n in noise)
    oracle, exact = gaussian_case(sde)  # the oracle's means belong to places in the batch: each start is a batch
    block = dict(PAPER, fit_target="noise")
    reference = reference_solution(sde, oracle, x_T, mu, config=block, substeps=1, noise_draws=3)
    assert torch.allclose(reference.target, torch.cat([exact(s, mu) for s in starts]), atol=1e-3)
    one = find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, max_evaluations=12, reference_substeps=1,
                         noise_draws=1)
    assert one.model_calls == 100 + 4 * (one.evaluations + 1)
    sampler = MRSampler(sde, MRSampler.options_from(dict(block, num_sample_steps=4, time_schedule="custom",
                                                         timesteps=one.timesteps)))
    outputs = torch.cat([sampler.sample(oracle, s, mu).x for s in starts])  # the search's error is over every start
    found = find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, max_evaluations=12, reference=reference,
                           noise_draws=3, starts={"one draw": one.timesteps})
    assert found.error <= batch_error(outputs, reference.target)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"noise_draws must be an integer >= 1 .*got {bad!r}"):
            search_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, noise_draws=bad)


def test_search_schedule_py_calibrates_scores_held_out_images_and_never_replaces_a_file(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("search_schedule", REPO / "scripts" / "search_schedule.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ws = make_workspace(tmp_path)
    opt = tmp_path / "tiny.yml"
    opt.write_text(yaml.safe_dump(raw_options(ws, "runs", distortion=["noisy", "hazy"],
                                              sweep={"runs": [{"sampler": "mrsampler", "nfe": 3},
                                                              {"sampler": "posterior", "nfe": 4}]})))
    args = [f"-opt={opt}", "--nfe", "2", "3", "--images", "2", "--crop", "16", "--max-evaluations", "12",
            "--set", "sampler.corrector=unic", "--objective", "rms", "--noise-draws", "2", "--max-step-ratio", "1.5",
            "--decimals", "0", "2"]
    assert script.main(args) == 0
    out = capsys.readouterr().out
    assert "calibration images: noisy/d_rgba, hazy/y" in out and "held-out images:    noisy/a, hazy/x" in out
    preset = tmp_path / "tiny_searched.yml"
    written = yaml.safe_load(preset.read_text())
    grids = written["sampler"]["timesteps"]
    assert written["sampler"]["time_schedule"] == "custom" and sorted(grids) == [2, 3] and written["name"] == "t_searched"
    assert written["sampler"]["corrector"] == "unic" and written["sampler"]["order"] == 2
    assert written["sweep"]["runs"] == [{"sampler": "mrsampler", "nfe": 2, "label": "searched"},
                                        {"sampler": "mrsampler", "nfe": 3, "label": "searched"},
                                        {"sampler": "posterior", "nfe": 4}]
    assert "Calibration: 2 images, centre-cropped to 16x16, 2 starts each" in preset.read_text()
    assert "(calibration: the rms objective of the images' RMSEs;" in preset.read_text()
    assert "NFE 3: calibration" in preset.read_text()
    assert "(adjacent steps in lambda within 1.5x; points rounded to 0, then 2 decimals of t)" in preset.read_text()
    assert all(t == round(t, 2) for grid in grids.values() for t in grid)
    assert parse_options(written).restorer.sampler.given["timesteps"] == {n: tuple(g) for n, g in grids.items()}
    before = preset.read_text()
    with pytest.raises(Exception, match="exists"):
        script.main(args)
    assert preset.read_text() == before


def test_the_objectives_weigh_the_images_rmses_as_named():
    target = torch.zeros(2, 3, 4, 4)
    x = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.4)])  # the images' RMSEs: 0.1 and 0.4
    assert sorted(OBJECTIVES) == ["balanced", "geometric", "rms"]
    assert batch_error(x, target, "geometric") == pytest.approx(0.2)  # sqrt(0.1 * 0.4)
    assert batch_error(x, target, "rms") == pytest.approx(0.085 ** 0.5)  # sqrt((0.01 + 0.16) / 2), the batch's RMSE
    assert batch_error(x, target) == pytest.approx((0.2 * 0.085 ** 0.5) ** 0.5)  # balanced, the default
    with pytest.raises(ValueError, match="objective must be one of balanced, geometric, rms, got 'mse'"):
        batch_error(x, target, "mse")


def test_the_search_ranks_grids_by_the_objective_it_is_given_and_refuses_an_unknown_one(sde):
    oracle, _ = gaussian_case(sde)
    mu, x_T = draws(sde, 1)
    block = dict(PAPER, fit_target="noise")
    reference = reference_solution(sde, oracle, x_T, mu, config=block, substeps=1)
    for name in OBJECTIVES:
        found = find_timesteps(sde, oracle, x_T, mu, nfe=4, config=block, max_evaluations=20, reference=reference,
                               objective=name)
        starts = prior_draws(sde, x_T, mu, NOISE_DRAWS)  # the error is over every start of the batch
        own = torch.cat([sample(sde, oracle, block, 4, s, mu) for s in starts])
        searched = torch.cat([sample(sde, oracle, dict(block, time_schedule="custom", timesteps=found.timesteps), 4,
                                     s, mu) for s in starts])
        assert found.own_error == pytest.approx(batch_error(own, reference.target, name), rel=1e-12)
        assert found.error == pytest.approx(batch_error(searched, reference.target, name), rel=1e-12)
        assert found.error < found.own_error
    calls = []
    with pytest.raises(ValueError, match="objective must be one of balanced, geometric, rms, got 'l1'"):
        find_timesteps(sde, lambda *a, **k: calls.append(1), x_T, mu, nfe=4, config=block, objective="l1")
    with pytest.raises(ValueError, match="noise_draws must be an integer >= 1"):
        find_timesteps(sde, lambda *a, **k: calls.append(1), x_T, mu, nfe=4, config=block, noise_draws=0)
    assert calls == []  # refused before the converged ODE is solved


def test_a_move_may_not_make_adjacent_steps_in_lambda_differ_by_more_than_the_bound(sde):
    lam = Lambda(sde)
    even = mr_time_grid(sde, "linear-lambda", 6).tolist()  # equal steps in lambda
    assert lam.step_ratio(even) == pytest.approx(1.0, abs=1e-3)
    assert lam.step_ratio([100.0, 0.0]) == 1.0
    pair = lambda times: abs(lam.of(times[2]) - lam.of(times[3]))  # noqa: E731  rewards a near-duplicate pair
    free, _, _ = pattern_search(even, pair(even), pair, lam, 0.5, 0.01, 300, None)
    bounded, _, used = pattern_search(even, pair(even), pair, lam, 0.5, 0.01, 300, None, max_ratio=2.0)
    assert lam.step_ratio(free) > 20 and pair(free) < 0.05
    assert 1.5 < lam.step_ratio(bounded) <= 2.0 and 0 < used <= 300
    uneven = [100.0] + [round(t, 3) for t in free[1:-1]] + [0.0]  # above the bound already: never further above
    again, _, _ = pattern_search(uneven, -pair(uneven), lambda t: -pair(t), lam, 0.5, 0.01, 300, None, max_ratio=2.0)
    assert lam.step_ratio(again) <= lam.step_ratio(uneven)


def test_the_step_ratio_bound_is_auto_from_nfe_6_none_or_a_number_and_refused_otherwise(sde):
    assert step_ratio_bound("auto", 5) is None and step_ratio_bound("auto", 6) == 2.0
    assert step_ratio_bound("auto", 10) == 2.0 and step_ratio_bound("auto", 20) == 2.0
    # with a corrector, "auto" bounds NFE 6 to 19 only (docs/timestep_search.md, "The step ratio")
    assert step_ratio_bound("auto", 5, "unic") is None and step_ratio_bound("auto", 19, "unic-bh2") == 2.0
    assert step_ratio_bound("auto", 20, "unic") is None and step_ratio_bound(2, 20, "unic") == 2.0
    assert step_ratio_bound(None, 10) is None and step_ratio_bound(3, 5) == 3.0
    oracle, _ = gaussian_case(sde)
    mu, x_T = draws(sde, 1)
    calls = []
    for bad in (0.5, True, "two", math.nan):
        with pytest.raises(ValueError, match=f"max_step_ratio must be a number >= 1 .* or 'auto', got {re.escape(repr(bad))}"):
            find_timesteps(sde, lambda *a, **k: calls.append(1), x_T, mu, nfe=4, config=PAPER, max_step_ratio=bad)
    assert calls == []  # refused before the converged ODE is solved
    block = dict(PAPER, fit_target="noise")
    reference = reference_solution(sde, oracle, x_T, mu, config=block, substeps=1, noise_draws=1)
    found = find_timesteps(sde, oracle, x_T, mu, nfe=10, config=block, max_evaluations=60, reference=reference,
                           noise_draws=1)
    own = MRSampler(sde, search_options(block, 10)).timesteps()
    start = start_grids(sde, 10, 0.0, own, {"dynamic programming": reference.teacher.dp_grid(sde, mu, 10)})[found.start]
    lam = Lambda(sde)
    assert found.timesteps != start and lam.step_ratio(found.timesteps) <= max(2.0, lam.step_ratio(start))
    assert found.max_step_ratio == 2.0
    corrected = find_timesteps(sde, oracle, x_T, mu, nfe=20, config=dict(block, corrector="unic"), max_evaluations=0,
                               reference=reference, noise_draws=1)
    assert corrected.max_step_ratio is None  # "auto" with a corrector at NFE 20


def test_a_velocity_network_is_inverted_exactly_at_integer_times_only(sde):
    """The premise of `decimals=0`: the samplers' (the reference's) velocity formula is exact on
    IR-SDE's integer times, so a velocity oracle samples as the noise oracle of the same law there,
    and not between them."""
    m = 0.45 + 0.1 * torch.rand((4, 3, 8, 8), generator=torch.Generator().manual_seed(9))
    mu, x_T = draws(sde, 1)

    def gap(times):
        block = dict(PAPER, num_sample_steps=len(times) - 1, time_schedule="custom", timesteps=times)
        out = [build_sampler("mrsampler", sde, dict(block, fit_target=t)).sample(GaussianOracle(sde, m, 0.1, t),
                                                                                   x_T.clone(), mu).x
               for t in ("velocity", "noise")]
        return rmse(*out)

    assert gap([100.0, 70.0, 40.0, 12.0, 3.0, 0.0]) < 5e-6  # float32 rounding
    assert gap([100.0, 70.5, 40.5, 12.5, 3.5, 0.0]) > 5e-5


def test_points_are_rounded_to_the_decimals_asked_and_coarse_to_fine_only_improves(sde):
    m = 0.45 + 0.1 * torch.rand((4, 3, 8, 8), generator=torch.Generator().manual_seed(9))
    oracle = GaussianOracle(sde, m, 0.1, "velocity")
    mu, x_T = draws(sde, 1)
    block = dict(PAPER, fit_target="velocity")
    reference = reference_solution(sde, oracle, x_T, mu, config=block, substeps=1, noise_draws=1)
    run = lambda d: find_timesteps(sde, oracle, x_T, mu, nfe=5, config=block, max_evaluations=150,  # noqa: E731
                                   reference=reference, noise_draws=1, decimals=d)
    coarse, both, fine = run(0), run((0, 3)), run(3)
    assert coarse.decimals == (0,) and both.decimals == (0, 3) and fine.decimals == (3,)
    assert all(t == int(t) for t in coarse.timesteps)
    assert all(t == round(t, 3) for t in both.timesteps + fine.timesteps)
    assert both.error < coarse.error and both.evaluations <= 150  # the fine search starts where the coarse one ended
    assert both.error < fine.error  # on a velocity network, the integer times first (docs/timestep_search.md)
    calls = []
    for bad in (-1, True, 1.5, (), (3, 0), "auto"):
        with pytest.raises(ValueError, match=f"decimals must be an integer >= 0 .*, got {re.escape(repr(bad))}"):
            find_timesteps(sde, lambda *a, **k: calls.append(1), x_T, mu, nfe=4, config=PAPER, decimals=bad)
    assert calls == []


def test_the_teacher_is_the_converged_trajectory_and_dynamic_programming_finds_its_cheapest_grid(sde):
    oracle, _ = gaussian_case(sde)
    mu, x_T = draws(sde, 1)
    options = MRSampler.options_from(dict(PAPER, fit_target="noise"))
    teacher = Teacher()
    x0 = converged_ode(sde, oracle, x_T, mu, options, 1, {}, teacher)
    assert sorted(teacher.states) == list(range(101)) and sorted(teacher.data) == list(range(1, 101))
    assert torch.allclose(teacher.states[0].double().clamp(0, 1), x0, atol=1e-6)
    assert torch.equal(teacher.states[100], x_T.float())
    a, s = oracle.a_s(100.0)
    assert torch.allclose(teacher.data[100], oracle.predictions(x_T.double(), mu.double(), a, s)[1].float(), atol=1e-6)
    grid = teacher.dp_grid(sde, mu, 4)
    assert len(grid) == 5 and grid[0] == 100 and grid[-1] == 0 and all(t == int(t) for t in grid)
    cost = lambda path: sum(teacher.step_cost(sde, mu, int(a), int(b)) for a, b in zip(path, path[1:]))  # noqa: E731
    g = torch.Generator().manual_seed(0)
    others = [[100, *sorted(torch.randperm(99, generator=g)[:3].add(1).tolist(), reverse=True), 0] for _ in range(50)]
    assert all(cost(grid) <= cost(p) + 1e-12 for p in others + [[100, 75, 50, 25, 0], [100, 60, 30, 10, 0]])


@pytest.mark.parametrize("fit_target", ["noise", "data", "velocity"])
def test_the_target_converges_to_the_closed_form_for_every_fit_target(sde, fit_target):
    # between integer times alpha^2 + (sigma / sigma_inf)^2 != 1: the reference's velocity formula
    # is off there (7.8e-5 at 4 substeps, growing with them); the search's target inverts it exactly
    mu, x_T = draws(sde, 2)
    m = torch.full_like(mu, 0.4)
    oracle = GaussianOracle(sde, m, 0.1, fit_target)
    exact = oracle.ode_solution(x_T, mu, 100.0, 0.0).clamp(0, 1)
    options = MRSampler.options_from(dict(PAPER, fit_target=fit_target))
    errors = [rmse(converged_ode(sde, oracle, x_T, mu, options, n, {}), exact) for n in (2, 8)]
    assert errors[1] < errors[0] / 3 and errors[1] < 1e-6


def test_search_schedule_py_refuses_what_it_cannot_search_before_loading_a_network(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("search_schedule", REPO / "scripts" / "search_schedule.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ws = make_workspace(tmp_path)
    raw = raw_options(ws, "runs", distortion=["noisy", "hazy"])
    raw["path"]["pretrain_model_G"] = str(tmp_path / "absent.pth")  # loading it would fail
    opt = tmp_path / "tiny.yml"
    opt.write_text(yaml.safe_dump(raw))
    cases = [(["--nfe", "2", "--set", "sampler.order=3"], "nfe must be an integer >= 3"),
             (["--nfe", "3", "--set", "sampler.solver_type=sde"], "solver_type 'sde' samples"),
             (["--nfe", "3", "--images", "7"], "--images: the test set has 6 images, fewer than the 7 asked for")]
    for extra, message in cases:
        with pytest.raises(Exception, match=re.escape(message)) as err:
            script.main([f"-opt={opt}", *extra])
        assert "absent.pth" not in str(err.value)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        script.main([f"-opt={opt}", "--nfe", "3", "--max-step-ratio", "0.5"])
    assert "--max-step-ratio: must be a number >= 1, none or auto, got '0.5'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main([f"-opt={opt}", "--nfe", "3", "--decimals", "3", "0"])
    assert "--decimals must be an integer >= 0" in capsys.readouterr().err
    assert not (tmp_path / "tiny_searched.yml").exists()


def test_calibration_images_are_read_as_test_py_reads_them(tmp_path):
    from uir.benchmark.calibration import load_lq
    from uir.data.paired import ImagePair, read_image, to_tensor

    img = (np.arange(8 * 10 * 3, dtype=np.uint16).reshape(8, 10, 3) * 271) % 65535
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), img.astype(np.uint16))
    batch = load_lq([ImagePair("deep", path, None)], crop=6)
    whole = to_tensor(read_image(path))
    assert batch.shape == (1, 3, 6, 6) and float(batch.max()) <= 1.0
    assert torch.equal(batch[0], whole[:, 1:7, 2:8])
