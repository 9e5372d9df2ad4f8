"""End-to-end runs of the evaluation pipeline on a tiny generated data set and tiny networks (CPU)."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import uir.metrics.lpips_metric as lpips_metric
from uir.common.errors import RunFolderError, UserError
from uir.data.paired import read_image, read_image_uint8
from uir.evaluation import read_csv, run
from uir.models.conditioning import ContextEncoder
from uir.restoration import Restorer
from uir.runtime import NetworkCall
from uir.metrics import image_metrics, quantize_to_uint8
from uir.models.daclip import load_daclip
from uir.models.networks import load_network
from uir.options import OptionsError, parse_options
from uir.samplers import build_sampler
from uir.sde import IRSDE

from helpers import load_script
from workspace import (
    ALL_SAMPLERS, CONTEXT_NET, CROP, PLAIN_NET, SAMPLER_BLOCK, TINY_DACLIP, make_task, make_workspace, options,
    raw_options, read_rgb, write_image,
)

REPO = Path(__file__).resolve().parents[1]


def restore_batch(sampler, denoiser, sde, mu, seeds, *, text_context=None, image_context=None):
    """One batch through `Restorer.restore`, the one way the project restores images."""
    restorer = Restorer(sde, denoiser, None, mu.device)
    return restorer.restore(mu, seeds, sampler, (image_context, text_context))
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The networks here are tiny: one intra-op thread is fastest and keeps the shared CPUs free."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("pipeline"))


# ---- one sweep over every sampler, two NFEs and two tasks ----------------------------------------


@pytest.fixture(scope="module")
def sweep(ws):
    opts = options(ws, "sweep", sweep={"samplers": ALL_SAMPLERS, "nfe": [2, 3]}, distortion=["noisy", "hazy"],
                   batch_size=2, num_workers=2, suffix="_r")
    return run(opts, progress=False)


def test_sweep_writes_one_row_per_task_sampler_nfe(sweep):
    inputs = [r for r in sweep.table if r["sampler"] == "input"]
    assert [(r["task"], r["label"], r["nfe"], r["images"]) for r in inputs] == [("noisy", "input", 0, 4), ("hazy", "input", 0, 2)]
    assert all(isinstance(r["psnr"], float) and r["sec_per_image"] is None for r in inputs)
    table = [r for r in sweep.table if r["sampler"] != "input"]
    assert len(table) == 2 * 4 * 2
    assert {(r["task"], r["sampler"], r["nfe"]) for r in table} == {
        (t, s, n) for t in ("noisy", "hazy") for s in ALL_SAMPLERS for n in (2, 3)
    }
    for row in table:
        assert row["images"] == (4 if row["task"] == "noisy" else 2)
        assert all(isinstance(row[m], float) for m in ("psnr", "ssim", "psnr_y", "ssim_y"))
        assert row["lpips"] is None or isinstance(row["lpips"], float)
        assert row["sec_per_image"] > 0
    mr = next(r for r in table if r["sampler"] == "mrsampler" and r["nfe"] == 3)
    assert (mr["solver"], mr["order"], mr["parameterization"], mr["schedule"]) == ("ode", 2, "data", "linspace")
    assert mr["model_calls"] == 3
    euler = next(r for r in table if r["sampler"] == "sde" and r["nfe"] == 2)
    assert (euler["solver"], euler["order"], euler["model_calls"]) == ("sde", 1, 2)
    # the three table files hold the same rows
    assert read_csv(sweep.paths["csv"]) == sweep.table
    assert json.loads(sweep.paths["json"].read_text())["rows"] == sweep.table
    assert sweep.paths["md"].read_text().count("\n") == 2 + len(sweep.table)


def test_sweep_folder_layout(sweep):
    run_dir = sweep.run_dir
    assert run_dir.name == "t"
    for task, names in (("noisy", ["a", "b", "c_gray", "d_rgba"]), ("hazy", ["x", "y"])):
        for sampler in ALL_SAMPLERS:
            for nfe in (2, 3):
                folder = run_dir / task / f"{sampler}_nfe{nfe}"
                assert sorted(p.name for p in folder.iterdir()) == [f"{n}_r.png" for n in names]
    rows = read_csv(sweep.paths["per_image"])
    assert len(rows) == (4 + 2) * 8 + (4 + 2)  # and one input row per image
    rows = [r for r in rows if r["sampler"] != "input"]
    assert {r["seed"] for r in rows if r["task"] == "noisy"} == {0, 1, 2, 3}  # seed (0) + image index
    assert yaml.safe_load(sweep.paths["options"].read_text())["sweep"] == {"samplers": ALL_SAMPLERS, "nfe": [2, 3], "runs": None}
    assert parse_options(yaml.safe_load(sweep.paths["options"].read_text())).outputs.suffix == "_r"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    log = sweep.paths["log"].read_text()
    assert "noisy mrsampler_nfe3: c_gray psnr=" in log and "sweep: samplers sde, posterior, heun, mrsampler" in log
    assert "| hazy | mrsampler | mrsampler | 3 |" in log  # the table


def test_metrics_recomputed_from_saved_pngs_equal_the_table(sweep, ws):
    rows = read_csv(sweep.paths["per_image"])
    for row in rows:
        lq_or_output = ws / "data" / row["task"] / "LQ" / f"{row['image']}.png" if row["sampler"] == "input" else None
        out = read_image_uint8(lq_or_output) if lq_or_output else read_rgb(sweep.run_dir / row["output"])
        gt = read_image_uint8(ws / "data" / row["task"] / "GT" / f"{row['image']}.png")
        expected = image_metrics(out, gt, CROP)
        for metric, value in expected.items():
            assert row[metric] == pytest.approx(value, rel=1e-12, abs=1e-12), (row["output"], metric)
    for entry in sweep.table:
        group = [r for r in rows if (r["task"], r["sampler"], r["nfe"]) == (entry["task"], entry["sampler"], entry["nfe"])]
        for metric in ("psnr", "ssim", "psnr_y", "ssim_y"):
            recomputed = np.mean([
                image_metrics(read_image_uint8(ws / "data" / r["task"] / "LQ" / f"{r['image']}.png")
                              if r["sampler"] == "input" else read_rgb(sweep.run_dir / r["output"]),
                              read_image_uint8(ws / "data" / r["task"] / "GT" / f"{r['image']}.png"), CROP)[metric]
                for r in group
            ])
            assert entry[metric] == pytest.approx(recomputed, rel=1e-12)


# ---- batching and seeds ----------------------------------------------------------------------------


# (sampler, settings, tolerance). The UNet itself differs between batch sizes by float rounding
# (~5e-7 here, from the convolution kernels); MR Sampler with fit_target noise turns the noise
# prediction into a data prediction at t near T, x0 = (x - mu - sigma_bar eps) / alpha + mu, which
# multiplies that rounding by up to 1 / alpha_T = 1 / eps = 200 (measured: 1.6e-5).
SAMPLER_CASES = [
    ("sde", {}, 1e-5), ("posterior", {}, 1e-5), ("heun", {"solver_type": "ode"}, 1e-5),
    ("heun", {"solver_type": "sde"}, 1e-5), ("mrsampler", {"solver_type": "ode", "fit_target": "data"}, 1e-5),
    ("mrsampler", {"solver_type": "ode"}, 5e-5), ("mrsampler", {"solver_type": "sde"}, 5e-5),
]


def test_the_unet_is_batch_invariant_up_to_rounding(ws):
    network = load_network("ConditionalUNet", PLAIN_NET, ws / "plain.pth").eval()
    x, mu = torch.rand(3, 3, 24, 32), torch.rand(3, 3, 24, 32)
    with torch.no_grad():
        together = network(x, mu, 100.0)
        for i in range(3):
            torch.testing.assert_close(together[i : i + 1], network(x[i : i + 1], mu[i : i + 1], 100.0),
                                       atol=2e-6, rtol=0)


@pytest.mark.parametrize("name, changes, tolerance", SAMPLER_CASES)
def test_an_image_gets_the_same_result_in_any_batch(ws, name, changes, tolerance):
    torch.manual_seed(1)
    network = load_network("ConditionalUNet", PLAIN_NET, ws / "plain.pth")
    call = NetworkCall(network.eval(), torch.device("cpu"))
    sde = IRSDE.create(50, 100, "cosine", 0.005)
    sampler = build_sampler(name, sde, {**SAMPLER_BLOCK, **changes, "num_sample_steps": 3})
    mu = torch.rand(3, 3, 24, 32)
    seeds = [10, 11, 12]
    together = restore_batch(sampler, call, sde, mu, seeds).x
    for i in range(3):
        alone = restore_batch(sampler, call, sde, mu[i : i + 1], [seeds[i]]).x
        torch.testing.assert_close(together[i : i + 1], alone, atol=tolerance, rtol=0)
    # seeds, not batch positions, decide the noise
    swapped = restore_batch(sampler, call, sde, mu[[1, 0]], [11, 10]).x
    torch.testing.assert_close(swapped[[1, 0]], together[:2], atol=tolerance, rtol=0)
    if sampler.stochastic:
        other = restore_batch(sampler, call, sde, mu[:1], [99]).x
        assert (other - together[:1]).abs().max() > 1e-3


def test_batch_size_does_not_change_saved_images(ws):
    single = run(options(ws, "bs1", batch_size=1), progress=False)
    batched = run(options(ws, "bs3", batch_size=3, num_workers=2), progress=False)
    for row in [r for r in read_csv(single.paths["per_image"]) if r["output"]]:
        a = read_rgb(single.run_dir / row["output"]).astype(int)
        b = read_rgb(batched.run_dir / row["output"]).astype(int)
        assert np.abs(a - b).max() <= 1, row["output"]
    assert {r["batch_size"] for r in read_csv(batched.paths["per_image"]) if r["output"]} == {1, 3}  # 3 of 24x32, 1 of 32x32


# ---- contexts, no GT, metrics switches -------------------------------------------------------------


def test_daclip_contexts_are_computed_once_per_image_and_reach_the_unet(ws, monkeypatch):
    seen = []
    original = ContextEncoder.__call__

    def counting(self, lq):
        seen.append(lq.shape[0])
        return original(self, lq)

    monkeypatch.setattr(ContextEncoder, "__call__", counting)
    opts = options(ws, "ctx", network_G={"which_model_G": "ConditionalUNet", "setting": CONTEXT_NET},
                   path={"pretrain_model_G": str(ws / "context.pth"), "daclip": str(ws / "daclip.pt")},
                   daclip_config=TINY_DACLIP, sweep={"samplers": ["mrsampler", "sde"], "nfe": [2]}, batch_size=2)
    result = run(opts, progress=False)
    assert sum(seen) == 4  # 4 images, 2 samplers: contexts once per image
    # recompute image "b" (index 1) by hand: DA-CLIP image features -> image_context, degradation -> text_context
    network = load_network("ConditionalUNet", CONTEXT_NET, ws / "context.pth").eval()
    daclip = load_daclip(ws / "daclip.pt", config=TINY_DACLIP)
    lq = torch.from_numpy(read_image(ws / "data" / "noisy" / "LQ" / "b.png")).permute(2, 0, 1)[None]
    image_context, degra_context = daclip.contexts(lq)
    sde = IRSDE.create(50, 100, "cosine", 0.005)
    sampler = build_sampler("mrsampler", sde, SAMPLER_BLOCK)
    x = restore_batch(sampler, NetworkCall(network, torch.device("cpu")), sde, lq, [1],
                      text_context=degra_context, image_context=image_context).x
    expected = quantize_to_uint8(x)[0].permute(1, 2, 0).numpy().astype(int)
    saved = read_rgb(result.run_dir / "noisy" / "mrsampler_nfe2" / "b.png").astype(int)
    assert np.abs(saved - expected).max() <= 1
    swapped = restore_batch(sampler, NetworkCall(network, torch.device("cpu")), sde, lq, [1],
                            text_context=image_context, image_context=degra_context).x
    assert (swapped - x).abs().max() > 1e-4  # the test can tell the two contexts apart


def test_network_with_contexts_needs_path_daclip(ws):
    opts = options(ws, "noctx", network_G={"which_model_G": "ConditionalUNet", "setting": CONTEXT_NET},
                   path={"pretrain_model_G": str(ws / "context.pth"), "daclip": None})
    with pytest.raises(OptionsError, match=r"path\.daclip: not set, but the network reads DA-CLIP contexts"):
        run(opts, progress=False)
    assert not (ws / "noctx").exists()  # nothing written before the setup succeeded


def test_tasks_from_distortion_skip_absent_folders(ws, caplog):
    with caplog.at_level(logging.WARNING, logger="uir"):
        result = run(options(ws, "distortion", distortion=["noisy", "rainy", "hazy"], max_images=1), progress=False)
    assert [r["task"] for r in result.table if r["sampler"] != "input"] == ["noisy", "hazy"]
    assert any("no folder for rainy" in r.getMessage() for r in caplog.records)


def test_task_without_gt_writes_images_and_no_metrics(ws):
    result = run(options(ws, "nogt", distortion=["low-light"]), progress=False)
    (row,) = result.table
    assert row["images"] == 1 and all(row[m] is None for m in ("psnr", "ssim", "psnr_y", "ssim_y", "lpips"))
    assert (result.run_dir / "low-light" / "sde_nfe2" / "z.png").is_file()


def test_metrics_off_and_lpips_reporting(ws, monkeypatch, caplog):
    off = run(options(ws, "nometrics", metrics=False, max_images=1), progress=False)
    assert "psnr" not in off.table[0] and "psnr" not in off.columns and off.table[0]["images"] == 1

    monkeypatch.setattr(lpips_metric.LpipsMetric, "create", classmethod(lambda cls, device, weights_file=None: None))
    monkeypatch.setattr(lpips_metric, "unavailable_reason", lambda: "LPIPS unavailable: no AlexNet weights (test)")
    with caplog.at_level(logging.WARNING, logger="uir"):
        result = run(options(ws, "nolpips", sweep={"samplers": ["sde", "posterior"], "nfe": [2]}), progress=False)
    warnings = [r for r in caplog.records if "no AlexNet weights (test)" in r.getMessage()]
    assert len(warnings) == 1 and "LPIPS column stays empty" in warnings[0].getMessage()
    assert all(r["lpips"] is None and r["psnr"] is not None for r in result.table)

    class FakeLpips:
        def __call__(self, out01, gt01):
            assert out01.dtype == torch.float32 and gt01.shape == out01.shape
            return torch.full((out01.shape[0],), 0.25)

    monkeypatch.setattr(lpips_metric.LpipsMetric, "create", classmethod(lambda cls, device, weights_file=None: FakeLpips()))
    with_lpips = run(options(ws, "fakelpips", max_images=2), progress=False)
    assert with_lpips.table[0]["lpips"] == pytest.approx(0.25)
    skipped = run(options(ws, "nolpipsflag", max_images=1, lpips=False), progress=False)
    assert "lpips" not in skipped.columns and "fid" in skipped.columns  # lpips: false leaves its column out


# ---- run folders: no overwrite, overwrite, resume --------------------------------------------------


def test_finished_runs_are_never_overwritten_silently(ws):
    first = run(options(ws, "keep", max_images=1), progress=False)
    marker = first.run_dir / "noisy" / "sde_nfe2" / "a.png"
    before = marker.read_bytes()
    second = run(options(ws, "keep", max_images=1, seed=5), progress=False)
    assert (first.run_dir.name, second.run_dir.name) == ("t", "t_2")
    assert marker.read_bytes() == before
    (first.run_dir / "note.txt").write_text("mine")
    third = run(options(ws, "keep", max_images=1, overwrite=True), progress=False)
    assert third.run_dir == first.run_dir and not (first.run_dir / "note.txt").exists()
    foreign = ws / "foreign" / "t"
    foreign.mkdir(parents=True)
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(RunFolderError, match="not a run folder"):
        run(options(ws, "foreign", max_images=1, overwrite=True), progress=False)
    assert (foreign / "thesis.tex").is_file()


def test_interrupted_run_resumes_where_it_stopped(ws, monkeypatch):
    calls = {"n": 0}
    original = Restorer.restore

    def interrupt_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(Restorer, "restore", interrupt_second_batch)
    opts = options(ws, "resume", batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run(opts, progress=False)
    run_dir = ws / "resume" / "t"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    done = [r for r in read_csv(run_dir / "per_image.csv") if r["sampler"] != "input"]
    assert sorted(r["image"] for r in done) == ["a", "c_gray"]  # the first batch (24x32) finished
    saved = {r["image"]: (run_dir / r["output"]).stat().st_mtime_ns for r in done}

    monkeypatch.setattr(Restorer, "restore", original)
    with pytest.raises(RunFolderError, match=r"seed: 0 then, 3 now"):
        run(options(ws, "resume", batch_size=2, seed=3, resume=True), progress=False)
    resumed = run(options(ws, "resume", batch_size=2, resume=True), progress=False)
    assert resumed.run_dir == run_dir and (resumed.processed, resumed.skipped) == (2, 2)
    assert {r["image"]: (run_dir / r["output"]).stat().st_mtime_ns for r in done} == saved
    assert next(r for r in resumed.table if r["sampler"] == "sde")["images"] == 4
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    # a resumed run whose sweep grows runs only the new points
    grown = run(options(ws, "resume", batch_size=2, resume=True, sweep={"samplers": ["sde"], "nfe": [2, 3]}),
                progress=False)
    assert (grown.processed, grown.skipped) == (4, 4) and len(grown.table) == 3  # input, sde 2, sde 3
    # a PNG that went missing is restored again
    (run_dir / "noisy" / "sde_nfe3" / "b.png").unlink()
    again = run(options(ws, "resume", resume=True, sweep={"samplers": ["sde"], "nfe": [2, 3]}), progress=False)
    assert (again.processed, again.skipped) == (1, 7)


# ---- errors as the user sees them --------------------------------------------------------------------


def _test_script():
    return load_script("test.py")


def _yaml(ws: Path, name: str, raw: dict) -> Path:
    path = ws / f"{name}.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_test_py_runs_and_prints_the_table(ws, capsys):
    script = _test_script()
    opt = _yaml(ws, "cli", raw_options(ws, "cli"))
    code = script.main(["-opt", str(opt), "--sampler", "posterior", "heun", "--nfe", "2", "--dataset", "noisy",
                        "hazy", "--max-images", "1"])
    assert code == 0
    rows = read_csv(ws / "cli" / "t" / "results.csv")
    assert len(rows) == 2 * 1 * 2 + 2 and {r["images"] for r in rows} == {1}  # + an input row per task
    assert "| noisy | posterior | posterior | 2 |" in capsys.readouterr().out


@pytest.mark.parametrize("case, pattern", [
    ("dataroot", r"datasets\.test1\.dataroot_LQ: .*nowhere/LQ does not exist"),
    ("checkpoint", r"path\.pretrain_model_G: .*missing\.pth does not exist\. Download universal-ir\.pth from HuggingFace"),
    ("key", r"sampler\.ordr: unknown key \(did you mean 'order'\?\)"),
    ("task", r"unknown task 'nosy' \(did you mean 'noisy'\?\); known tasks: motion-blurry, hazy"),
    ("daclip", r"path\.daclip: not set"),
    ("gt_count", r"hold different numbers of images: 1 LQ .* 2 GT"),
])
def test_user_errors_print_one_message_and_exit_2(ws, capsys, case, pattern):
    raw = raw_options(ws, f"err_{case}")
    argv: list[str] = []
    if case == "dataroot":
        del raw["data_root"]
        raw["datasets"] = {"test1": {"name": "noisy", "mode": "LQGT", "dataroot_GT": str(ws / "nowhere/GT"),
                                     "dataroot_LQ": str(ws / "nowhere/LQ")}}
    elif case == "checkpoint":
        raw["path"]["pretrain_model_G"] = str(ws / "missing.pth")
    elif case == "key":
        argv = ["--set", "sampler.ordr=3"]
    elif case == "task":
        argv = ["--dataset", "nosy"]
    elif case == "daclip":
        raw["network_G"]["setting"] = dict(CONTEXT_NET)
        raw["path"]["pretrain_model_G"] = str(ws / "context.pth")
    elif case == "gt_count":
        make_task(ws / "uneven", "noisy", [("a", 24, 32, 3)], np.random.default_rng(1))
        write_image(ws / "uneven" / "noisy" / "GT" / "b.png", np.zeros((24, 32, 3), np.uint8))
        raw["data_root"] = str(ws / "uneven")
    code = _test_script().main(["-opt", str(_yaml(ws, f"err_{case}", raw)), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("test.py: error:")]
    assert len(message) == 1 and re.search(pattern, message[0]), err


def test_user_errors_are_the_documented_types():
    assert issubclass(OptionsError, UserError) and issubclass(RunFolderError, UserError)
