"""The embedded demo: options/demo.yml, the shipped network, and a short run of it."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from uir.data.paired import read_image_uint8
from uir.models import load_network
from uir.metrics import image_metrics
from uir.options import load_options
from uir.samplers import MRSampler
from uir.training import load_train_options

from helpers import load_script

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "options" / "demo.yml"
TRAIN_DEMO = REPO / "options" / "train_demo.yml"
TRAIN_DEMO_FINETUNE = REPO / "options" / "train_demo_finetune.yml"
TRAIN_DEMO_DARK = REPO / "options" / "train_demo_dark.yml"


@pytest.fixture(scope="module")
def demo_options():
    return load_options(DEMO).restorer


def test_the_shipped_network_is_the_one_train_demo_yml_trains(demo_options):
    trained = load_train_options(TRAIN_DEMO)
    assert demo_options.network_G.which_model_G == trained.network_G.which_model_G
    assert demo_options.network_G.setting == trained.network_G.setting
    assert demo_options.network_G.setting["context_dim"] is None
    assert MRSampler.options_from(demo_options.sampler).fit_target == trained.fit_target
    sde = demo_options.sde
    assert (sde.max_sigma, sde.T, sde.schedule, sde.eps) == (
        trained.sde.max_sigma, trained.sde.T, trained.sde.schedule, trained.sde.eps)


@pytest.mark.parametrize("stage, previous", [(TRAIN_DEMO_FINETUNE, TRAIN_DEMO), (TRAIN_DEMO_DARK, TRAIN_DEMO_FINETUNE)])
def test_each_stage_fine_tunes_the_last_without_changing_what_the_network_is(stage, previous):
    before, after = load_train_options(previous), load_train_options(stage)
    assert after.network_G == before.network_G
    assert (after.fit_target, after.sde) == (before.fit_target, before.sde)
    assert Path(after.path.pretrain_model_G) == Path(before.experiment_dir) / "models" / "latest.pth"
    assert after.path.strict_load


def test_the_shipped_checkpoint_is_small_and_loads_strictly(demo_options):
    checkpoint = REPO / demo_options.path.pretrain_model_G
    assert checkpoint.stat().st_size < 10e6
    net = demo_options.network_G
    model = load_network(net.which_model_G, net.setting, checkpoint, strict=True)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_demo_compares_mr_sampler_10_with_posterior_100(demo_options):
    assert {(p.sampler, p.nfe) for p in load_options(DEMO).points} == {("mrsampler", 10), ("posterior", 100)}
    s = MRSampler.options_from(demo_options.sampler)
    assert (s.solver_type, s.order, s.parameterization) == ("ode", 2, "data")


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_short_demo_run_restores_the_noisy_and_hazy_photos(tmp_path, monkeypatch, capsys):
    """options/demo.yml as shipped, on two of its tasks: both samplers run, the table is printed,
    and posterior sampling at NFE 100 beats the LQ input by at least 2 dB there (measured +2.3 dB
    on noisy and +6.2 dB on hazy, mean of three photos). The dark noisy coffee cup, which the
    network brightened before it was trained on darkened photos (pretrained/demo/README.md), is
    restored above its input too (measured +1.5 dB)."""
    monkeypatch.chdir(REPO)
    script = load_script("test.py")
    code = script.main(["-opt", str(DEMO), "--dataset", "noisy", "hazy",
                        "--results-root", str(tmp_path), "--no-lpips", "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| noisy | posterior | posterior | 100 |" in out and "| hazy | mrsampler | mrsampler | 10 |" in out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rows = {(r["task"], r["sampler"]): r for r in _read_csv(run_dir / "results.csv")}
    assert len(rows) == 6  # input, posterior and MR Sampler for two tasks
    lq = {}
    for task in ("noisy", "hazy"):
        for lq_path in sorted((REPO / "demo" / "test" / task / "LQ").iterdir()):
            gt_path = REPO / "demo" / "test" / task / "GT" / lq_path.name
            lq[task, lq_path.stem] = image_metrics(read_image_uint8(lq_path), read_image_uint8(gt_path), 4)["psnr"]
        values = [v for (t, _), v in lq.items() if t == task]
        lq_mean = sum(values) / len(values)
        assert float(rows[(task, "input")]["psnr"]) == pytest.approx(lq_mean, rel=1e-12)  # the input row
        assert float(rows[(task, "posterior")]["psnr"]) > lq_mean + 2.0, (task, rows[(task, "posterior")], lq_mean)
    per_image = {(r["task"], r["sampler"], r["image"]): float(r["psnr"]) for r in _read_csv(run_dir / "per_image.csv")}
    assert per_image[("noisy", "posterior", "002_coffee")] > lq["noisy", "002_coffee"]
