"""Faithfulness: every array and every sampler case recorded from the reference in
sampler_golden.pt is reproduced (outputs to atol 1e-4, nfe and timesteps exactly/1e-4).
The cases, the SDE settings and the oracle's parameters are all read from the file."""
from __future__ import annotations

import pytest
import torch

from uir.samplers import RecordedNoise, build_sampler
from uir.sde import IRSDE
from uir.sde.oracle import GaussianOracle

ATOL = 1e-4
SCHEDULE_ARRAYS = ("thetas", "sigmas", "thetas_cumsum", "sigma_bars")


@pytest.fixture(scope="module")
def data(golden):
    return golden("sampler_golden.pt")


def sde_from(data, schedule=None) -> IRSDE:
    s = data["sde"]
    return IRSDE.create(max_sigma=s["max_sigma"], T=s["T"], schedule=schedule or s["schedule"], eps=s["eps"])


def test_golden_file_has_cases_and_schedules(data):
    assert len(data["cases"]) > 0
    assert len(data["schedules"]) > 0


def test_schedule_arrays(data):
    for name, arrays in data["schedules"].items():
        sde = sde_from(data, schedule=name)
        for key in SCHEDULE_ARRAYS:
            expected = arrays[key]
            got = getattr(sde, key)
            assert got.shape == expected.shape, (name, key)
            torch.testing.assert_close(got, expected.to(got.dtype), atol=1e-6, rtol=1e-5, msg=f"{name}.{key}")
        assert abs(sde.dt - float(arrays["dt"])) <= 1e-6 * max(1.0, abs(float(arrays["dt"]))), (name, "dt")


def case_id(case) -> str:
    return f"{case['sampler']}:" + ",".join(f"{k}={v}" for k, v in case["config"].items())


def run_case(data, case):
    sde = sde_from(data)
    sampler = build_sampler(case["sampler"], sde, dict(case["config"]))
    oracle = GaussianOracle(sde, data["m"], data["S"], sampler.fit_target)
    noise = RecordedNoise(case["noise"])
    result = sampler.sample(oracle, data["xT"].clone(), data["mu"], noise=noise)
    return result, noise


def case_problems(data, case) -> list[str]:
    """Everything in which our run of `case` differs from the reference's record."""
    result, noise = run_case(data, case)
    problems = []
    if result.model_calls != case["nfe"]:
        problems.append(f"nfe {result.model_calls} != {case['nfe']}")
    if noise.used != len(case["noise"]):
        problems.append(f"drew {noise.used} noise tensors, reference drew {len(case['noise'])}")
    if case["sampler"] == "mrsampler":
        ref_t = torch.tensor(case["timesteps"], dtype=torch.float64)
        got_t = torch.tensor(result.timesteps, dtype=torch.float64)
        if got_t.shape != ref_t.shape or not torch.allclose(got_t, ref_t, atol=ATOL, rtol=0):
            problems.append(f"timesteps {result.timesteps} != {case['timesteps']}")
    expected = case["output"]
    if result.x.shape != expected.shape:
        problems.append(f"output shape {tuple(result.x.shape)} != {tuple(expected.shape)}")
    else:
        err = (result.x.double() - expected.double()).abs().max().item()
        if not err <= ATOL:  # NaN fails too
            problems.append(f"max |output - reference| = {err:.3g}")
    return problems


def test_every_case(data):
    failures = []
    for case in data["cases"]:
        problems = case_problems(data, case)
        if problems:
            failures.append(f"{case_id(case)}: " + "; ".join(problems))
    assert not failures, f"{len(failures)} of {len(data['cases'])} cases differ:\n" + "\n".join(failures[:20])


def corrupted(case, **changes):
    bad = dict(case)
    bad.update(changes)
    return bad


def test_a_corrupted_record_is_detected(data):
    """The comparison itself must be able to fail: perturb each recorded field in turn."""
    mr = next(c for c in data["cases"] if c["sampler"] == "mrsampler")
    assert case_problems(data, mr) == []
    assert case_problems(data, corrupted(mr, output=mr["output"] + 2 * ATOL))
    assert case_problems(data, corrupted(mr, nfe=mr["nfe"] + 1))
    assert case_problems(data, corrupted(mr, timesteps=[t + 0.01 for t in mr["timesteps"]]))
    stochastic = next(c for c in data["cases"] if len(c["noise"]) > 1)
    swapped = list(reversed(stochastic["noise"]))
    assert case_problems(data, corrupted(stochastic, noise=swapped))
    with pytest.raises(RuntimeError, match="only"):
        case_problems(data, corrupted(stochastic, noise=stochastic["noise"][:-1]))
