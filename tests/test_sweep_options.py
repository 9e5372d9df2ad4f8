"""Sweeps: `sweep.runs` (each sampler with its own NFEs, a label and `sampler:` overrides), how
--sampler / --nfe replace parts of it, and labels in every output of a run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from uir.evaluation import read_csv, run
from uir.options import load_options, parse_options
from workspace import make_workspace, options

REPO = Path(__file__).resolve().parents[1]


def pairs(loaded):
    return tuple((p.sampler, p.nfe) for p in loaded.points)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    torch.set_num_threads(1)
    return make_workspace(tmp_path_factory.mktemp("sweeps"))


# ---- sweep.runs: explicit (sampler, nfe) pairs ---------------------------------------------

def _runs_file(tmp_path, runs):
    raw = yaml.safe_load((REPO / "options" / "mrsampler.yml").read_text())
    raw["sweep"] = {"runs": runs}
    path = tmp_path / "runs.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_sweep_runs_pairs_each_sampler_with_its_own_nfe(tmp_path):
    path = _runs_file(tmp_path, [{"sampler": "mrsampler", "nfe": 10}, {"sampler": "posterior", "nfe": 100}])
    options = load_options(path)
    assert pairs(options) == (("mrsampler", 10), ("posterior", 100))
    assert parse_options(options.to_dict()).points == options.points


def test_command_line_sampler_or_nfe_replaces_runs(tmp_path):
    path = _runs_file(tmp_path, [{"sampler": "mrsampler", "nfe": 10}, {"sampler": "posterior", "nfe": 100}])
    assert pairs(load_options(path, [("sweep.nfe", [20])])) == (("mrsampler", 20), ("posterior", 20))
    assert pairs(load_options(path, [("sweep.samplers", ["sde"])])) == (("sde", 10), ("sde", 100))


@pytest.mark.parametrize("runs, message", [
    ([{"sampler": "mrsampler", "nfe": 0}], r"sweep.runs\[0\].nfe: must be >= 1"),
    ([{"sampler": "euler", "nfe": 5}], r"sweep.runs\[0\].sampler: 'euler' is not valid"),
    ([{"sampler": "sde", "steps": 5}], r"sweep.runs\[0\].steps: unknown key"),
    ([{"sampler": "sde", "nfe": 5}, {"sampler": "sde", "nfe": 5}], r"the point 'sde' at nfe 5 is listed twice"),
    ([], r"sweep.runs: expected a non-empty list"),
])
def test_bad_sweep_runs_are_named(tmp_path, runs, message):
    with pytest.raises(ValueError, match=message):
        load_options(_runs_file(tmp_path, runs))


def test_labelled_runs_name_their_points_everywhere(ws):
    runs = [{"label": "MR Sampler-1", "sampler": "mrsampler", "nfe": [2, 3], "set": {"order": 1}},
            {"label": "MR Sampler-2", "sampler": "mrsampler", "nfe": 2, "set": {"order": 2}}]
    result = run(options(ws, "labels", max_images=1, sweep={"runs": runs}), progress=False)
    table = [r for r in result.table if r["sampler"] != "input"]
    assert [(r["label"], r["nfe"], r["order"]) for r in table] == [("MR Sampler-1", 2, 1), ("MR Sampler-1", 3, 1),
                                                                    ("MR Sampler-2", 2, 2)]
    assert {r["label"] for r in read_csv(result.paths["per_image"]) if r["output"]} == {"MR Sampler-1", "MR Sampler-2"}
    assert sorted(p.name for p in (result.run_dir / "noisy").iterdir()) == [
        "MR_Sampler-1_nfe2", "MR_Sampler-1_nfe3", "MR_Sampler-2_nfe2"]
    assert "| noisy | mrsampler | MR Sampler-2 | 2 |" in result.paths["md"].read_text()
    one, two = (next(r for r in table if r["label"] == f"MR Sampler-{k}" and r["nfe"] == 2) for k in (1, 2))
    assert one["psnr"] != two["psnr"]  # the set: block reached the sampler


@pytest.mark.parametrize("runs, message", [
    ([{"sampler": "mrsampler", "nfe": 2, "set": {"ordr": 1}}], r"sweep\.runs\[0\]\.set\.ordr: unknown key \(did you mean 'order'\?\)"),
    ([{"sampler": "mrsampler", "nfe": 2, "set": {"order": 0}}], r"sweep\.runs\[0\]\.set\.order: must be >= 1"),
    ([{"sampler": "mrsampler", "nfe": 2, "set": {"num_sample_steps": 5}}], r"set the steps with the run's nfe"),
    ([{"label": "a b", "sampler": "sde", "nfe": 2}, {"label": "a_b", "sampler": "posterior", "nfe": 2}],
     r"the labels 'a b' and 'a_b' both make the folder a_b_nfe2 \(characters outside A-Za-z0-9._- become _\); "
     r"rename one"),
    ([{"label": "MRS α", "sampler": "sde", "nfe": 2}, {"label": "MRS β", "sampler": "sde", "nfe": 2}],
     r"the labels 'MRS α' and 'MRS β' both make the folder MRS___nfe2"),
    ([{"label": "input", "sampler": "sde", "nfe": 2}], r"sweep\.runs\[0\]\.label: 'input' names the LQ images' own row"),
])
def test_bad_labelled_runs_are_named(ws, runs, message):
    with pytest.raises(ValueError, match=message):
        options(ws, "x", sweep={"runs": runs})
