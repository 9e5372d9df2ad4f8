"""`trajectory:` in test.py: every step's state of the chosen images, for every sweep point, as
`trajectories/<task>/<label>_nfe<N>/<image>.pt`; the same x_T across points; one state per step
plus x_T; the last state, quantized, is the PNG; resumes neither lose nor duplicate files."""
from __future__ import annotations

import logging
import math

import pytest
import torch
import yaml

from helpers import load_script
from uir.evaluation import read_csv
from uir.evaluation.runner import run
from uir.evaluation.tasks import TaskData
from uir.evaluation.trajectory import TrajectoryRecorder
from uir.metrics import quantize_to_uint8
from uir.options import parse_options
from uir.options.sweep import SweepPoint
from uir.samplers import build_sampler
from uir.samplers.base import Step
from uir.data.paired import ImagePair
from uir.sde import IRSDE
from workspace import make_workspace, options, raw_options, read_rgb

SWEEP = {"runs": [
    {"label": "Posterior", "sampler": "posterior", "nfe": [3]},
    {"label": "MR Sampler-2", "sampler": "mrsampler", "nfe": [3], "set": {"solver_type": "sde", "order": 2,
                                                                          "time_schedule": "linear-lambda"}},
    {"label": "MR Sampler-1", "sampler": "mrsampler", "nfe": [2], "set": {"order": 1, "denoise_last": True}},
    {"sampler": "heun", "nfe": [3]},
]}
# States per trajectory: one per step plus x_T (Heun: two evaluations per step, an odd NFE ends
# with one Euler step).
STATES = {"Posterior_nfe3": 4, "MR_Sampler-2_nfe3": 4, "MR_Sampler-1_nfe2": 3, "heun_nfe3": 3}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("trajectory"))


@pytest.mark.parametrize("value, message", [
    ("a.png", "trajectory.images: 'a.png' has a file extension; give the name without it ('a')"),
    ([], "trajectory.images: expected 'all' or a non-empty list"),
    ([1, -2], "trajectory.images: position -2 is negative"),
    (["a", "a"], "trajectory.images"),
    ([True], "trajectory.images: True is neither an image name nor a position"),
])
def test_bad_image_selections_name_the_key(ws, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        options(ws, "runs", trajectory={"images": value})


def test_a_reference_style_options_file_keeps_every_points_trajectory(ws, capsys):
    """test.py with the reference's flat keys and a trajectory block: a file per point and image,
    the same x_T across points, NFE + 1 states (Heun: ceil(NFE / 2) + 1), the last state's 8 bits
    equal to the PNG, predictions in the solver's parameterization and as x_0."""
    raw = raw_options(ws, "runs_ref", sweep=SWEEP, trajectory={"images": ["a", "c_gray"]}, batch_size=2,
                      metrics=["psnr"], name="ref")
    path = ws / "ref.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_script("test.py").main([f"-opt={path}"]) == 0
    run_dir = ws / "runs_ref" / "ref"
    root = run_dir / "trajectories" / "noisy"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == sorted(
        [*STATES, *(f"{folder}/{image}.pt" for folder in STATES for image in ("a", "c_gray"))])
    saved = yaml.safe_load((run_dir / "options.yml").read_text())["trajectory"]
    assert saved == {"images": ["a", "c_gray"], "predictions": True, "only": False}
    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    for image in ("a", "c_gray"):
        first = None
        for folder, count in STATES.items():
            record = torch.load(root / folder / f"{image}.pt", weights_only=True)
            states = record["states"]
            assert states.dtype == torch.float32 and states.shape[0] == count == record["steps"] + 1
            assert len(record["timesteps"]) == count and record["timesteps"][0] >= record["timesteps"][-1]
            first = states[0] if first is None else first
            assert torch.equal(states[0], first)  # one x_T for every point
            png = read_rgb(run_dir / "noisy" / folder / f"{image}.png")
            assert torch.equal(quantize_to_uint8(states[-1]).permute(1, 2, 0), torch.from_numpy(png.copy()))
            assert record["predictions"].shape == record["denoised"].shape == (count - 1, *states.shape[1:])
            assert record["prediction_steps"] == list(range(1, count))
            assert record["lambdas"] == pytest.approx(sde.at(sde.lambdas, record["timesteps"]).tolist())
            assert (record["task"], record["image"], record["seed"]) == ("noisy", image, 0 if image == "a" else 2)
        mrs = torch.load(root / "MR_Sampler-2_nfe3" / f"{image}.pt", weights_only=True)
        assert mrs["parameterization"] == "data" and torch.equal(mrs["predictions"], mrs["denoised"])
        assert mrs["timesteps"] == pytest.approx(mrs["grid"]) and mrs["prediction_times"] == mrs["timesteps"][:-1]
        posterior = torch.load(root / "Posterior_nfe3" / f"{image}.pt", weights_only=True)
        assert posterior["parameterization"] == "noise" and not torch.equal(posterior["predictions"],
                                                                            posterior["denoised"])
        # The reference's integer grid: each step evaluates at its grid point, lands one unit lower.
        assert posterior["prediction_times"] == [100.0, 50.0, 1.0] and posterior["timesteps"] == [100, 99, 49, 0]
    assert not list(run_dir.rglob("*.part")) and not list(run_dir.rglob("*.tmp"))


def test_an_unknown_image_is_refused_before_the_run_folder_is_made(ws, capsys):
    raw = raw_options(ws, "runs_bad", trajectory={"images": ["a", "nope"]})
    path = ws / "bad.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_script("test.py").main([f"-opt={path}"]) == 2
    err = capsys.readouterr().err
    assert "trajectory.images: no task has an image named 'nope'" in err and "a, b, c_gray, d_rgba" in err
    assert not (ws / "runs_bad").exists()
    with pytest.raises(Exception, match=r"position 9 is beyond every task's images \(counts, after max_images: "
                                        r"noisy: 4, hazy: 2\)"):
        run(options(ws, "runs_bad", distortion=["noisy", "hazy"], trajectory={"images": [9]}), progress=False)


def test_a_resumed_run_keeps_earlier_files_and_says_what_it_cannot_add(ws, caplog):
    sweep = {"runs": [{"label": "MRS", "sampler": "mrsampler", "nfe": [2]}]}
    first = run(options(ws, "runs_resume", sweep=sweep, max_images=2, trajectory={"images": ["a"]}, metrics=False),
                progress=False)
    kept = first.run_dir / "trajectories" / "noisy" / "MRS_nfe2" / "a.pt"
    stamp = kept.stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="uir"):
        second = run(options(ws, "runs_resume", sweep=sweep, resume=True, metrics=False,
                             trajectory={"images": ["a", "b", "d_rgba"]}), progress=False)
    assert second.run_dir == first.run_dir and second.skipped == 2 and second.processed == 2
    folder = kept.parent
    assert sorted(p.name for p in folder.iterdir()) == ["a.pt", "d_rgba.pt"]
    assert kept.stat().st_mtime_ns == stamp  # not redone, not duplicated
    assert any("without keeping their trajectory" in r.getMessage() and "b (MRS_nfe2)" in r.getMessage()
               for r in caplog.records)
    per_image = read_csv(first.run_dir / "per_image.csv")
    assert sorted(r["image"] for r in per_image) == ["a", "b", "c_gray", "d_rgba"]


def test_only_restores_the_chosen_images(ws):
    result = run(options(ws, "runs_only", sweep={"samplers": ["mrsampler"], "nfe": [2]}, metrics=["psnr"],
                         trajectory={"images": ["b"], "only": True, "predictions": False}), progress=False)
    per_image = read_csv(result.run_dir / "per_image.csv")
    assert sorted((r["label"], r["image"]) for r in per_image) == [("input", "b"), ("mrsampler", "b")]
    record = torch.load(result.run_dir / "trajectories" / "noisy" / "mrsampler_nfe2" / "b.pt", weights_only=True)
    assert "predictions" not in record and record["states"].shape == (3, 3, 32, 32)
    assert [r["images"] for r in result.table] == [1, 1]


def test_the_recorder_streams_to_disk_and_drops_non_finite_images(tmp_path):
    """States go to part files as they come; an image whose result is not finite gets no file, and
    no part file is left behind (nor after a failed attempt)."""
    pairs = tuple(ImagePair(n, tmp_path / f"{n}.png", None) for n in ("p", "q", "r"))
    task = TaskData("t", pairs, tmp_path, None)
    sde = IRSDE.create(max_sigma=50, T=100, schedule="cosine", eps=0.005)
    sampler = build_sampler("mrsampler", sde, {"num_sample_steps": 2, "order": 1})
    point = SweepPoint("mrsampler", 2)
    recorder = TrajectoryRecorder(tmp_path, task, point, sampler, sde, {0: 0, 2: 2}, {0: 5, 1: 6, 2: 7}, True)
    x = torch.randn(3, 3, 4, 4)
    recorder(Step(0, 100.0, x))
    parts = sorted(p.name for p in (tmp_path / "trajectories" / "t" / "mrsampler_nfe2").iterdir())
    assert parts == ["p.states.part", "r.states.part"]
    recorder(Step(1, 50.0, x + 1, x * 2, x * 3, 100.0))
    recorder(Step(2, 0.0, x + 2, x * 4, x * 5, 50.0))
    written = recorder.finish({0: "non-finite output"}, model_calls=2)
    folder = tmp_path / "trajectories" / "t" / "mrsampler_nfe2"
    assert written == [folder / "r.pt"] and sorted(p.name for p in folder.iterdir()) == ["r.pt"]
    record = torch.load(folder / "r.pt", weights_only=True)
    assert torch.equal(record["states"], torch.stack([x[2], x[2] + 1, x[2] + 2]))
    assert torch.equal(record["predictions"], torch.stack([x[2] * 2, x[2] * 4]))
    assert record["prediction_times"] == [100.0, 50.0] and record["seed"] == 7
    assert math.isfinite(record["lambdas"][0]) and record["lambdas"][0] < record["lambdas"][1]
    failed = TrajectoryRecorder(tmp_path, task, SweepPoint("mrsampler", 3), sampler, sde, {0: 1}, {0: 6}, False)
    failed(Step(0, 100.0, x))
    failed.discard()  # what Evaluation.restore does when the attempt raises (out of memory)
    assert list((tmp_path / "trajectories" / "t" / "mrsampler_nfe3").iterdir()) == []


def test_saving_trajectories_changes_no_number(ws):
    sweep = {"runs": [{"sampler": "mrsampler", "nfe": [3], "set": {"solver_type": "sde"}}]}
    plain = run(options(ws, "runs_plain", sweep=sweep, metrics=["psnr"], max_images=2), progress=False)
    kept = run(options(ws, "runs_kept", sweep=sweep, metrics=["psnr"], max_images=2, trajectory={"images": "all"}),
               progress=False)
    assert [r["psnr"] for r in plain.table] == [r["psnr"] for r in kept.table]
    for image in ("a", "b"):
        assert (read_rgb(plain.run_dir / "noisy" / "mrsampler_nfe3" / f"{image}.png")
                == read_rgb(kept.run_dir / "noisy" / "mrsampler_nfe3" / f"{image}.png")).all()
    parse_options(yaml.safe_load((kept.run_dir / "options.yml").read_text()))  # written back, reads back
