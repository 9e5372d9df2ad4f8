"""A resumed run compares what it resumes point by point: a point's settings may not change under
its label (a real run killed part way, then resumed), a new label may not take an earlier point's
folder, earlier points keep their own settings, and a metric that part of the run could not
compute is left empty rather than averaged over some images."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import uir.metrics.lpips_metric as lpips_metric
from helpers import REPO
from uir.common.errors import RunFolderError
from uir.evaluation import read_csv, run
from uir.options import parse_options
from workspace import make_workspace, options

DEMO = REPO / "options" / "demo.yml"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    torch.set_num_threads(1)
    return make_workspace(tmp_path_factory.mktemp("resume_points"))


def demo_with(tmp_path, order: int):
    raw = yaml.safe_load(DEMO.read_text())
    raw["sweep"] = {"runs": [{"label": "X", "sampler": "mrsampler", "nfe": 6, "set": {"order": order}}]}
    path = tmp_path / f"order{order}.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return [sys.executable, "test.py", "-opt", str(path), "--dataset", "noisy", "--max-images", "3",
            "--batch-size", "1", "--no-lpips", "--no-fid", "--results-root", str(tmp_path / "runs")]


def test_resume_refuses_a_point_whose_settings_changed_under_its_label(tmp_path):
    proc = subprocess.Popen(demo_with(tmp_path, 1), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list((tmp_path / "runs").rglob("*.png")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    changed = subprocess.run(demo_with(tmp_path, 2) + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert changed.returncode == 2, changed.stderr
    assert "the point 'X' (nfe 6) was made with other settings (settings.order: 1 then, 2 now)" in changed.stderr
    assert "Traceback" not in changed.stderr
    same = subprocess.run(demo_with(tmp_path, 1) + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert same.returncode == 0, same.stderr
    (row,) = [r for r in read_csv(tmp_path / "runs" / "demo" / "results.csv") if r["label"] == "X"]
    assert (row["order"], row["images"]) == (1, 3)


def test_a_new_label_may_not_take_an_earlier_points_folder(ws):
    run(options(ws, "clash", max_images=1, sweep={"runs": [{"label": "a/b", "sampler": "sde", "nfe": 2}]}),
        progress=False)
    with pytest.raises(RunFolderError, match=r"the point 'a_b' \(nfe 2\) would write into the folder a_b_nfe2 of "
                                             r"the earlier point 'a/b'"):
        run(options(ws, "clash", max_images=1, resume=True,
                    sweep={"runs": [{"label": "a_b", "sampler": "posterior", "nfe": 2}]}), progress=False)


def test_earlier_points_keep_their_own_settings(ws):
    first = run(options(ws, "keep_own", max_images=1, sweep={"samplers": ["mrsampler"], "nfe": [2]},
                        sampler={"num_sample_steps": 2, "order": 1, "fit_target": "noise"}), progress=False)
    again = run(options(ws, "keep_own", max_images=1, resume=True, sweep={"samplers": ["mrsampler"], "nfe": [3]},
                        sampler={"num_sample_steps": 3, "order": 2, "fit_target": "noise"}), progress=False)
    assert again.run_dir == first.run_dir
    rows = {r["nfe"]: r for r in again.table if r["sampler"] == "mrsampler"}
    assert (rows[2]["order"], rows[3]["order"]) == (1, 2)
    assert rows[2]["psnr"] == next(r for r in first.table if r["sampler"] == "mrsampler")["psnr"]
    saved = parse_options(yaml.safe_load(again.paths["options"].read_text()))
    assert {p.nfe: dict(p.overrides).get("order", saved.restorer.sampler.given["order"]) for p in saved.points} == {
        2: 1, 3: 2}


class FakeLpips:
    def __call__(self, out01, gt01):
        return torch.full((out01.shape[0],), 0.25)


def test_a_metric_missing_from_part_of_a_resumed_run_is_left_empty(ws, monkeypatch, caplog):
    sweep = {"samplers": ["sde"], "nfe": [2]}
    monkeypatch.setattr(lpips_metric.LpipsMetric, "create", classmethod(lambda cls, device, weights_file=None: FakeLpips()))
    first = run(options(ws, "half_lpips", max_images=1, sweep=sweep), progress=False)
    assert next(r for r in first.table if r["sampler"] == "sde")["lpips"] == pytest.approx(0.25)
    monkeypatch.setattr(lpips_metric.LpipsMetric, "create", classmethod(lambda cls, device, weights_file=None: None))
    with caplog.at_level(logging.WARNING, logger="uir"):
        again = run(options(ws, "half_lpips", max_images=2, resume=True, sweep=sweep), progress=False)
    row = next(r for r in again.table if r["sampler"] == "sde" and r["task"] == "noisy")
    assert row["images"] == 2 and row["lpips"] is None and row["psnr"] is not None
    assert any("lpips is missing for 1 of 2 images" in r.getMessage() for r in caplog.records)
