"""A sampler and a metric of one's own, defined here (outside the package), registered with one
decorator each, and run through test.py: the sampler's option is validated, its settings columns
and the metric's column reach results.csv, results.md and per_image.csv, and nothing under
universal-image-restoration/ is touched."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor

from uir.common.checks import number
from uir.common.declared import option
from uir.evaluation import read_csv
from uir.metrics import METRICS, ImageMetric, ScoreBatch
from uir.samplers import SAMPLERS, BaseSampler, SamplerOptions, Step
from workspace import make_workspace, raw_options

from helpers import REPO, load_script


@dataclass(frozen=True)
class BlendOptions(SamplerOptions):
    blend: float = option(0.5, check=number(0, 1), help="how far each step moves toward the network's x_0")


class BlendSampler(BaseSampler):
    """x <- x + blend (x0_hat - x) at each point of linspace(T, 0, N + 1) but the last."""

    Options = BlendOptions
    parameterization = "data"

    def settings(self) -> dict[str, Any]:
        return {"solver": "blend", "fit_target": self.fit_target, "blend": self.config.blend}

    def timesteps(self) -> list[float]:
        n = self.config.num_sample_steps
        return [self.sde.T * (1 - i / n) for i in range(n + 1)]

    def steps(self, model_fn, x_T: Tensor, mu: Tensor, noise) -> Iterator[Step]:
        times, x = self.timesteps(), x_T
        for i in range(1, len(times)):
            x = x + self.config.blend * (model_fn(x, times[i - 1]) - x)
            yield Step(i, times[i], x)


class MeanAbsoluteError(ImageMetric):
    title = "MAE"
    higher_is_better = False

    def __call__(self, batch: ScoreBatch) -> Tensor:
        return (batch.out.clamp(0, 1) - batch.gt).abs().mean(dim=(1, 2, 3))


@pytest.fixture
def plugins():
    SAMPLERS.register("blend")(BlendSampler)
    METRICS.register("mae")(MeanAbsoluteError)
    yield
    SAMPLERS.unregister("blend")
    METRICS.unregister("mae")


def package_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", "universal-image-restoration"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


def write_options(ws, **extra) -> str:
    raw = raw_options(ws, "runs", **extra)
    path = ws / "plugin.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def test_a_sampler_and_a_metric_of_ones_own_run_through_test_py(tmp_path, plugins, capsys):
    test_py = load_script("test.py")

    before = package_state()
    ws = make_workspace(tmp_path)
    opt = write_options(ws, sampler={"num_sample_steps": 3, "fit_target": "noise", "blend": 0.25},
                        sweep={"runs": [{"label": "blend-q", "sampler": "blend", "nfe": 3},
                                        {"label": "blend-h", "sampler": "blend", "nfe": 3, "set": {"blend": 0.5}},
                                        {"sampler": "mrsampler", "nfe": 2}]},
                        metrics=["psnr", "mae"], max_images=2)
    assert test_py.main([f"-opt={opt}"]) == 0
    run_dir = ws / "runs" / "t"
    table = read_csv(run_dir / "results.csv")
    rows = {r["label"]: r for r in table if r["task"] == "noisy"}
    assert rows["blend-q"]["blend"] == "0.25" and rows["blend-h"]["blend"] == "0.5"
    assert rows["blend-q"]["solver"] == "blend" and rows["mrsampler"]["solver"] == "ode"
    assert rows["mrsampler"]["blend"] is None and rows["blend-q"]["corrector"] is None
    assert {"mae", "psnr"} <= set(table[0]) and "ssim" not in table[0] and "fid" not in table[0]
    assert rows["blend-q"]["mae"] != rows["blend-h"]["mae"] and rows["blend-q"]["model_calls"] == 3
    per_image = read_csv(run_dir / "per_image.csv")
    mine = [r for r in per_image if r["label"] == "blend-h"]
    assert len(mine) == 2 and all(r["mae"] > 0 and r["blend"] == "0.5" for r in mine)
    assert abs(sum(r["mae"] for r in mine) / 2 - rows["blend-h"]["mae"]) < 1e-12
    header = (run_dir / "results.md").read_text(encoding="utf-8").splitlines()[0]
    assert "| blend |" in header and "| mae |" in header
    assert yaml.safe_load((run_dir / "options.yml").read_text())["sampler"]["blend"] == 0.25
    assert package_state() == before  # nothing under universal-image-restoration/ changed


def test_the_samplers_own_options_are_validated(tmp_path, plugins, capsys):
    test_py = load_script("test.py")

    ws = make_workspace(tmp_path)
    misspelt = write_options(ws, sampler={"num_sample_steps": 3, "blnd": 0.5}, sweep={"samplers": ["blend"]})
    assert test_py.main([f"-opt={misspelt}"]) == 2
    assert "sampler.blnd: unknown key (did you mean 'blend'?)" in capsys.readouterr().err
    out_of_range = write_options(ws, sampler={"num_sample_steps": 3, "blend": 2}, sweep={"samplers": ["blend"]})
    assert test_py.main([f"-opt={out_of_range}"]) == 2
    assert "sampler.blend: must lie in [0, 1], got 2.0" in capsys.readouterr().err
    not_its_key = write_options(ws, sweep={"runs": [{"sampler": "blend", "nfe": 2, "set": {"order": 1}}]})
    assert test_py.main([f"-opt={not_its_key}"]) == 2
    err = capsys.readouterr().err
    assert ("sweep.runs[0].set.order: sampler 'blend' does not read this key (it is mrsampler's); its keys: "
            "fit_target, blend") in err
    unknown_metric = write_options(ws, metrics=["psnr", "maee"])
    assert test_py.main([f"-opt={unknown_metric}"]) == 2
    assert "metrics (--no-metrics): 'maee' is not valid (did you mean 'mae'?)" in capsys.readouterr().err


def test_the_registry_refuses_a_taken_name_and_lists_the_valid_ones(plugins):
    with pytest.raises(ValueError, match="'blend' is taken"):
        SAMPLERS.register("blend")(type("Other", (BlendSampler,), {}))
    with pytest.raises(ValueError, match=r"sde.algorithm: 'blned' is not valid \(did you mean 'blend'\?\); "
                                         r"valid values: sde, posterior, heun, mrsampler, blend"):
        SAMPLERS["blned"]
    assert "blend" in SAMPLERS and SAMPLERS["blend"].name == "blend"
    assert torch.equal(MeanAbsoluteError()(ScoreBatch(torch.ones(1, 3, 4, 4), None, torch.zeros(1, 3, 4, 4), None, 0)),
                       torch.ones(1))
