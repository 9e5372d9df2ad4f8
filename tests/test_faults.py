"""Fault injection: nothing wrong is ever scored as a result, and every user error is one line.

Each case of issue #14: non-finite outputs and checkpoints, option ranges, resume fingerprints,
atomic run folders, broken inputs, one-line errors and a full disk (SIGTERM, and SIGKILL then
resume: tests/test_interrupts.py).
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from helpers import REPO, load_script
from uir.common.errors import RunFolderError
from uir.evaluation import read_csv, run
from uir.evaluation.run_folder import RunFolder
from uir.models.networks import build_network
from uir.options import OptionsError, load_options, parse_options
from uir.restoration import FiniteWatch, Restoration, Restorer
from workspace import PLAIN_NET, make_workspace, options, raw_options, write_image

DEMO = REPO / "options" / "demo.yml"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = make_workspace(tmp_path_factory.mktemp("faults"))
    torch.manual_seed(0)
    net = build_network("ConditionalUNet", PLAIN_NET)
    state = net.state_dict()
    nan = dict(state)
    nan["final_conv.weight"] = nan["final_conv.weight"].clone()
    nan["final_conv.weight"].view(-1)[0] = float("nan")
    torch.save(nan, root / "nan.pth")
    huge = {k: (v * 1e30 if k == "final_conv.weight" else v) for k, v in state.items()}
    torch.save(huge, root / "huge.pth")  # finite weights whose outputs overflow
    return root


def run_test_py(argv, capsys) -> tuple[int, str, str]:
    code = load_script("test.py").main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


# ---- 1. non-finite outputs are detected, never scored ----------------------------------------


def test_a_checkpoint_with_a_nan_weight_is_refused_naming_the_tensor(ws, capsys):
    opt = write_yaml(ws / "nan.yml", raw_options(ws, "r_nan", path={"pretrain_model_G": str(ws / "nan.pth")}))
    code, _, err = run_test_py(["-opt", opt, "--max-images", "1"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "tensor 'final_conv.weight' holds NaN or infinite values" in err and "nan.pth" in err
    assert not (ws / "r_nan").exists()


def test_non_finite_images_get_no_png_no_metric_and_fail_the_run(ws, capsys):
    raw = raw_options(ws, "r_huge", path={"pretrain_model_G": str(ws / "huge.pth")}, distortion=["hazy"],
                      sweep={"samplers": ["mrsampler"], "nfe": [3]})
    code, out, err = run_test_py(["-opt", write_yaml(ws / "huge.yml", raw)], capsys)
    assert code == 1
    assert "2 restoration(s) gave no result" in err and "hazy/x mrsampler nfe 3: non-finite output" in err
    (row,) = [r for r in read_csv(ws / "r_huge" / "t" / "results.csv") if r["sampler"] == "mrsampler"]
    assert (row["images"], row["failed"], row["psnr"]) == (0, 2, None)
    rows = [r for r in read_csv(ws / "r_huge" / "t" / "per_image.csv") if r["sampler"] == "mrsampler"]
    assert all(r["error"].startswith("non-finite output") and r["psnr"] is None and not r["output"] for r in rows)
    assert not list((ws / "r_huge" / "t").rglob("*.png"))
    log = (ws / "r_huge" / "t" / "test.log").read_text()
    assert re.search(r"first went non-finite at call [123] of 3", log)


def test_the_watch_names_the_first_bad_network_call_per_image():
    calls = {"n": 0}

    def net(x, mu, t, **_):
        calls["n"] += 1
        out = torch.zeros_like(x)
        if calls["n"] >= 3:
            out[1] = float("inf")  # image 1 goes bad at the third call; image 0 never
        return out

    watch = FiniteWatch(net, 2, torch.device("cpu"))
    for _ in range(4):
        watch(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), 1.0)
    assert watch.first_bad.tolist() == [0, 3]
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0, 0, 0] = float("nan")  # the sampler's own result went non-finite for image 0
    done = Restoration(x, 4, torch.isfinite(x).flatten(1).all(1), watch.first_bad)
    failures = done.failures()
    assert set(failures) == {0, 1} and "call 3 of 4" in failures[1] and "arithmetic overflowed" in failures[0]


# ---- 2. every option is checked for range, non-finite numbers included --------------------------


@pytest.mark.parametrize("key, value, message", [
    ("sde.max_sigma", float("nan"), r"sde\.max_sigma: must be a finite number, got nan"),
    ("sde.max_sigma", float("inf"), r"sde\.max_sigma: must be a finite number, got inf"),
    ("sde.max_sigma", 1e308, r"sde\.max_sigma: must lie in \(0, 10000\]"),
    ("sde.T", 10_000_000, r"sde\.T: must be <= 100000"),
    ("sampler.rho", float("nan"), r"sampler\.rho: must be a finite number"),
    ("sampler.threshold_max", float("nan"), r"sampler\.threshold_max: must be a finite number"),
    ("sampler.lambda_min", float("nan"), r"sampler\.lambda_min: must be a finite number or -inf, got nan"),
    ("sampler.lambda_min", float("inf"), r"sampler\.lambda_min: must be a finite number or -inf, got inf"),
    ("sampler.timestep_offset", -1, r"sampler\.timestep_offset: must be >= 0"),
    ("sampler.num_sample_steps", 10**9, r"sampler\.num_sample_steps: must be <= 100000"),
    ("seed", 2**63, r"seed \(--seed\): must be <= 9223372036854775807"),
])
def test_out_of_range_and_non_finite_options_are_refused(key, value, message):
    with pytest.raises(OptionsError, match=message):
        load_options(DEMO, [(key, value)])


def test_a_timestep_offset_beyond_the_sde_is_refused():
    from uir.evaluation import build_sweep
    from uir.sde import IRSDE

    options = load_options(DEMO, [("sampler.time_schedule", "leading"), ("sampler.timestep_offset", 50)])
    with pytest.raises(OptionsError, match=r"sampler\.timestep_offset: 50 puts the 'leading' grid's first point at "
                                           r"t = 140, beyond sde\.T = 100; valid offsets: 0 to 10"):
        build_sweep(options.restorer, options.points, IRSDE.from_settings(options.restorer.sde))


def test_more_steps_than_the_sde_has_warn_for_integer_grid_samplers(ws, caplog):
    with caplog.at_level(logging.WARNING, logger="uir"):
        run(options(ws, "r_steps", max_images=1, sde={"max_sigma": 50, "T": 4, "schedule": "cosine", "eps": 0.005,
                                                       "algorithm": "sde"},
                    sweep={"samplers": ["posterior", "mrsampler"], "nfe": [5]}), progress=False)
    warned = [r.getMessage() for r in caplog.records if "more steps than the SDE's T = 4" in r.getMessage()]
    assert len(warned) == 1 and "'posterior' with nfe 5" in warned[0]  # MR Sampler's grid is continuous


# ---- 3. --resume never mixes two different runs ---------------------------------------------------


def test_resume_refuses_another_checkpoint_or_data_root_listing_the_differences(ws, tmp_path):
    ckpt = tmp_path / "net.pth"
    torch.save(torch.load(ws / "plain.pth", weights_only=True), ckpt)
    base = dict(max_images=1, path={"pretrain_model_G": str(ckpt), "daclip": None})
    run(options(ws, "r_fp", **base), progress=False)
    other = {k: v + 0.01 if v.is_floating_point() else v for k, v in torch.load(ckpt, weights_only=True).items()}
    torch.save(other, ckpt)  # same path, other weights
    with pytest.raises(RunFolderError, match=r"checkpoints\.pretrain_model_G\.(mtime_ns|sha256_head_tail)"):
        run(options(ws, "r_fp", resume=True, **base), progress=False)
    torch.save(torch.load(ws / "plain.pth", weights_only=True), ckpt)
    copy = tmp_path / "copy"
    shutil.copytree(ws / "data", copy)  # the same images in another folder: still another data root
    with pytest.raises(RunFolderError, match=r"data_root: .* then, .* now"):
        run(options(ws, "r_fp", resume=True, **{**base, "data_root": str(copy)}), progress=False)


def test_resume_with_other_points_keeps_the_earlier_rows(ws):
    first = run(options(ws, "r_grow", max_images=1, sweep={"samplers": ["sde"], "nfe": [2, 3]}), progress=False)
    again = run(options(ws, "r_grow", max_images=1, resume=True, sweep={"samplers": ["posterior"], "nfe": [2]}),
                progress=False)
    assert again.run_dir == first.run_dir
    points = [(r["sampler"], r["nfe"]) for r in read_csv(again.paths["csv"])]
    assert points == [("input", 0), ("sde", 2), ("sde", 3), ("posterior", 2)]
    saved = parse_options(yaml.safe_load(again.paths["options"].read_text()))
    assert [(p.sampler, p.nfe) for p in saved.points] == [("sde", 2), ("sde", 3), ("posterior", 2)]


def test_a_per_image_line_cut_short_is_dropped_and_redone(ws, caplog):
    first = run(options(ws, "r_cut", max_images=2), progress=False)
    path = first.paths["per_image"]
    text = path.read_text()
    path.write_text(text[: len(text) - 12])  # power loss in the middle of the last row
    with caplog.at_level(logging.WARNING, logger="uir"):
        again = run(options(ws, "r_cut", max_images=2, resume=True), progress=False)
    assert any("last line was cut short" in r.getMessage() for r in caplog.records)
    assert again.processed == 1 and again.table == first.table[:1] + again.table[1:]
    assert [r["images"] for r in again.table] == [r["images"] for r in first.table]


# ---- 4. run folders are claimed atomically -----------------------------------------------------


def _claim_many(root: str, barrier, out) -> None:
    barrier.wait()
    for _ in range(15):
        folder = RunFolder.claim(root, "same", overwrite=False, resume=False)
        out.put(folder.path.name)


def test_concurrent_runs_of_one_name_never_share_a_folder(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_claim_many, args=(str(tmp_path), barrier, out)) for _ in range(2)]
    for w in workers:
        w.start()
    names = [out.get(timeout=60) for _ in range(30)]
    for w in workers:
        w.join(timeout=60)
    assert len(set(names)) == 30


def test_a_folder_held_by_a_live_process_is_not_resumed(ws):
    first = run(options(ws, "r_lock", max_images=1), progress=False)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (first.run_dir / ".lock").write_text(f"{holder.pid}\n")
        with pytest.raises(RunFolderError, match=rf"in use by a running process \(pid {holder.pid}\)"):
            run(options(ws, "r_lock", max_images=1, resume=True), progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert run(options(ws, "r_lock", max_images=1, resume=True), progress=False).run_dir == first.run_dir  # stale lock
    assert not (first.run_dir / ".lock").exists()


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_result(ws, monkeypatch):
    first = run(options(ws, "r_over", max_images=1), progress=False)
    png = next(first.run_dir.rglob("*.png"))
    before = png.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU fell off")

    monkeypatch.setattr(Restorer, "restore", broken)
    with pytest.raises(RuntimeError, match="fell off"):
        run(options(ws, "r_over", max_images=1, overwrite=True, seed=1), progress=False)
    assert png.read_bytes() == before and json.loads((first.run_dir / "run.json").read_text())["status"] == "finished"
    assert not [p for p in (ws / "r_over").iterdir() if p.name.startswith(".")]  # nothing left aside
    monkeypatch.undo()
    again = run(options(ws, "r_over", max_images=1, overwrite=True, seed=1), progress=False)
    assert again.run_dir == first.run_dir and png.read_bytes() != before
    assert sorted(p.name for p in (ws / "r_over").iterdir()) == ["t"]


def test_symlinks_and_files_in_the_way_of_a_run_folder(ws, tmp_path):
    real = run(options(ws, "r_link", max_images=1), progress=False).run_dir
    links = tmp_path / "links"
    links.mkdir()
    (links / "t").symlink_to(real)
    with pytest.raises(RunFolderError, match="is a symbolic link; refusing to replace"):
        run(options(ws, str(links), max_images=1, overwrite=True), progress=False)
    assert (real / "run.json").is_file()
    files = tmp_path / "files"
    files.mkdir()
    (files / "t").write_text("my notes")
    assert run(options(ws, str(files), max_images=1), progress=False).run_dir.name == "t_2"
    assert (files / "t").read_text() == "my notes"
    with pytest.raises(RunFolderError, match=r"results_root: cannot create"):
        run(options(ws, str(files / "t" / "deeper"), max_images=1), progress=False)


# ---- 5. broken inputs are errors, not results --------------------------------------------------


def test_a_truncated_jpeg_is_an_error_naming_the_file(ws, tmp_path, capsys):
    data = tmp_path / "data" / "noisy"
    img = (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", img)
    (data / "LQ").mkdir(parents=True)
    (data / "LQ" / "a.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    write_image(data / "GT" / "a.png", img)
    opt = write_yaml(tmp_path / "o.yml", raw_options(ws, str(tmp_path / "res"), data_root=str(tmp_path / "data")))
    code, _, err = run_test_py(["-opt", opt], capsys)
    assert code == 2 and "a.jpg: the file is damaged or truncated" in err and "Traceback" not in err


def test_lq_and_gt_with_different_names_warn_once(ws, tmp_path, caplog):
    data = tmp_path / "data" / "noisy"
    for i, (lq, gt) in enumerate((("a", "x"), ("b", "y"))):
        img = np.full((24, 32, 3), 40 * i, np.uint8)
        write_image(data / "LQ" / f"{lq}.png", img)
        write_image(data / "GT" / f"{gt}.png", img)
    with caplog.at_level(logging.WARNING, logger="uir"):
        run(options(ws, str(tmp_path / "res"), data_root=str(tmp_path / "data")), progress=False)
    warned = [r.getMessage() for r in caplog.records if "paired in sorted order" in r.getMessage()]
    assert len(warned) == 1 and "a.png" in warned[0] and "x.png" in warned[0]


@pytest.mark.parametrize("case, message", [
    ("duplicate", r"duplicate key 'T': first on line \d+, again on line \d+"),
    ("latin1", r"not a UTF-8 text file"),
    ("devnull", r"options file /dev/null is not a regular file"),
    ("dataroot_file", r"data_root \(--data-root\): .* is a file, not a folder"),
    ("setting", r"network_G\.setting\.nf: expected an integer, got 'many'"),
])
def test_bad_files_and_values_are_one_line(ws, tmp_path, capsys, case, message):
    opt = tmp_path / "o.yml"
    argv = []
    if case == "duplicate":
        opt.write_text(DEMO.read_text().replace("  T: 100\n", "  T: 100\n  T: 50\n"))
    elif case == "latin1":
        opt.write_bytes(DEMO.read_text().replace("# The embedded demo", "# Caf\xe9 demo").encode("latin-1"))
    elif case == "devnull":
        opt = Path("/dev/null")
    else:
        opt = DEMO
        argv = ["--data-root", str(DEMO)] if case == "dataroot_file" else ["--set", "network_G.setting.nf=many"]
    code, _, err = run_test_py(["-opt", opt, *argv], capsys)
    lines = [line for line in err.splitlines() if line.startswith("test.py: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert re.search(message, lines[0]), err


# ---- 6. a full disk, train.py and make_demo_data.py -----------------------------------------------


def test_a_full_disk_is_one_io_error_line_and_leaves_no_temporary_file(ws, monkeypatch, capsys):
    import uir.evaluation.writer as writer

    def full(path, rgb):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_png", full)
    opt = write_yaml(ws / "full.yml", raw_options(ws, "r_full", max_images=1))
    code, _, err = run_test_py(["-opt", opt], capsys)
    assert code == 1 and "I/O error" in err and "No space left on device" in err and "Traceback" not in err
    run_dir = ws / "r_full" / "t"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / ".lock").exists()


def test_a_status_that_cannot_be_written_does_not_hide_the_run_error(ws, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the real error")

    def no_space(self, path, text):
        if "failed" in text:
            raise RunFolderError(f"cannot write {path}: No space left on device (the disk is full)")
        return original(path, text)

    original = RunFolder.__dict__["_write_atomic"].__func__
    monkeypatch.setattr(RunFolder, "_write_atomic", no_space)
    monkeypatch.setattr(Restorer, "restore", broken)
    with pytest.raises(RuntimeError, match="the real error"):
        run(options(ws, "r_status", max_images=1), progress=False)


@pytest.mark.parametrize("key, value, message", [
    ("train.lr", float("nan"), r"train\.lr: must be a finite number, got nan"),
    ("train.grad_clip_norm", float("nan"), r"train\.grad_clip_norm: must be a finite number"),
    ("datasets.val.sampler_options.order", 4, r"datasets\.val \(mrsampler, sampler_options\): sampler\.order: 4"),
])
def test_train_py_bad_values_are_one_line(key, value, message, capsys):
    code = load_script("train.py").main(["-opt", str(REPO / "options" / "train_demo.yml"), "--set", f"{key}={value}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and re.search(message, err), err


def test_make_demo_data_refuses_an_absurd_size_before_allocating(tmp_path, capsys):
    code = load_script("scripts/make_demo_data.py").main(["--out", str(tmp_path / "d"), "--size", "100000"])
    assert code == 2 and "test_size must be <= 2048" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
