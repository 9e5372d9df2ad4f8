"""Run folders under hostile conditions (issue #26, items 5, 10, 13): an --overwrite killed before
its first result, locks whose process id now names another process or another host, and a disk
that fills while a lock or a PNG is written."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO
from uir.common.errors import RunFolderError
from uir.evaluation import run
from uir.evaluation.run_folder import RunFolder
from uir.evaluation.run_lock import LockOwner, lock_holder, process_start
from uir.evaluation.writer import write_png
from uir.options import build_arg_parser, load_options, overrides_from_args

DEMO = REPO / "options" / "demo.yml"
QUICK = ["--dataset", "noisy", "--max-images", "1", "--no-lpips", "--no-fid", "--device", "cpu", "--batch-size", "1"]


def test_test_py_puts_back_the_run_an_overwrite_killed_before_its_first_result(tmp_path):
    root = tmp_path / "results"
    base = [sys.executable, "test.py", "-opt", str(DEMO), *QUICK, "--results-root", str(root)]
    args = build_arg_parser().parse_args([*base[2:], "--sampler", "mrsampler", "--nfe", "2"])
    run(load_options(args.opt, overrides_from_args(args)), progress=False)  # test.py's first run, in this process
    old = {p.relative_to(root / "demo"): p.read_bytes() for p in (root / "demo").rglob("*") if p.is_file()}
    # posterior at NFE 100: seconds before the first result, the old run waits aside all that time
    proc = subprocess.Popen(base + ["--sampler", "posterior", "--nfe", "100", "--overwrite"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not ((root / "demo" / "run.json").is_file() and list(root.glob(".demo.*"))):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    (aside,) = root.glob(".demo.replaced-*")
    assert json.loads((root / "demo" / "run.json").read_text())["status"] == "running"
    assert not list((root / "demo").rglob("*.png"))  # killed before its first result
    states = {}
    for mode in ("new", "overwrite", "resume"):
        states[mode] = tmp_path / mode
        shutil.copytree(root, states[mode], symlinks=True)
    lock = json.loads((root / "demo" / ".lock").read_text())  # the killed run's
    assert lock["host"] == socket.gethostname() and lock["start"] == lock["start"].strip() != ""
    # As if its pid now named another live process (pid 1 always runs): still no holder.
    (states["resume"] / "demo" / ".lock").write_text(json.dumps({**lock, "pid": 1}))

    again = subprocess.run(base + ["--sampler", "mrsampler", "--nfe", "2"], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "put back the run that an earlier --overwrite had moved aside" in again.stderr
    assert not aside.exists() and (root / "demo_2" / "run.json").is_file()  # the new run beside the old
    assert {p.relative_to(root / "demo"): p.read_bytes() for p in (root / "demo").rglob("*") if p.is_file()} == old

    for mode, state in states.items():  # any mode of the next run puts it back first
        folder = RunFolder.claim(str(state), "demo", overwrite=mode == "overwrite", resume=mode == "resume")
        try:
            if mode == "overwrite":  # the old run is aside again, as this new overwrite asks
                assert json.loads((folder.aside / "run.json").read_text())["status"] == "finished"
            else:
                assert json.loads((state / "demo" / "run.json").read_text())["status"] == "finished"
                assert folder.path.name == ("demo" if mode == "resume" else "demo_2")
        finally:
            folder.release()
        assert not list(state.glob(".demo.*"))  # an overwrite with no result puts it back again


def test_a_replaced_run_that_cannot_be_put_back_safely_is_named(tmp_path):
    for pid in ("11111111", "22222222"):  # two killed overwrites' leftovers (processes long gone)
        aside = tmp_path / f".t.replaced-{pid}"
        aside.mkdir()
        (aside / "run.json").write_text(json.dumps({"status": "finished"}))
    with pytest.raises(RunFolderError, match=r"an earlier --overwrite ended before its first result and left the "
                                             r"run it replaced in .*\.t\.replaced-11111111, .*\.t\.replaced-22222222"):
        RunFolder.claim(str(tmp_path), "t", overwrite=False, resume=False)
    assert not (tmp_path / "t").exists()


def test_an_old_style_aside_is_put_back_and_one_of_a_live_overwrite_is_left_alone(tmp_path):
    old = tmp_path / ".t.replaced-99999999"  # as earlier versions named it; no such process
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"status": "finished"}))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "run.json").write_text(json.dumps({"status": "running"}))  # the killed overwrite's run
    RunFolder.claim(str(tmp_path), "t", overwrite=False, resume=False).release()
    assert json.loads((tmp_path / "t" / "run.json").read_text())["status"] == "finished" and not old.exists()
    live = tmp_path / f".u.replaced-{os.getpid()}-{process_start(os.getpid())}"  # an overwrite of this process
    live.mkdir()
    (live / "run.json").write_text(json.dumps({"status": "finished"}))
    (tmp_path / "u").mkdir()  # its new folder, between its mkdir and its lock
    RunFolder.claim(str(tmp_path), "u", overwrite=False, resume=False).release()
    assert json.loads((live / "run.json").read_text())["status"] == "finished"  # not put back under its feet


@contextmanager
def _live_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _finished_run(root: Path) -> Path:
    folder = RunFolder.claim(str(root), "t", overwrite=False, resume=False)
    folder.write_status(status="finished")
    folder.release()
    return folder.path


def test_a_lock_records_the_host_and_start_time_and_a_reused_pid_is_not_the_holder(tmp_path):
    folder = RunFolder.claim(str(tmp_path), "t", overwrite=False, resume=False)
    lock = json.loads((folder.path / ".lock").read_text())
    assert lock == {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid())}
    assert lock["start"] is not None  # Linux: /proc/<pid>/stat
    folder.release()
    run_dir = _finished_run(tmp_path)
    with _live_process() as pid:
        # The lock's pid is alive, but it is another process than the one that took the lock.
        (run_dir / ".lock").write_text(LockOwner(pid, socket.gethostname(), "1").text())
        assert lock_holder(run_dir) is None
        RunFolder.claim(str(tmp_path), "t", overwrite=False, resume=True).release()
        (run_dir / ".lock").write_text(LockOwner(pid, socket.gethostname(), process_start(pid)).text())
        with pytest.raises(RunFolderError, match=rf"in use by a running process \(pid {pid}\)"):
            RunFolder.claim(str(tmp_path), "t", overwrite=True, resume=False)
        (run_dir / ".lock").write_text(f"{pid}\n")  # a lock of an older version: the pid alone
        with pytest.raises(RunFolderError, match=rf"in use by a running process \(pid {pid}\)"):
            RunFolder.claim(str(tmp_path), "t", overwrite=False, resume=True)
    (run_dir / ".lock").write_text("1\n")  # pid 1 is alive, and an old lock cannot say more: held
    assert lock_holder(run_dir) is not None and lock_holder(run_dir).pid == 1


def test_a_lock_of_another_host_is_not_broken_and_says_how_to_proceed(tmp_path):
    run_dir = _finished_run(tmp_path)
    (run_dir / ".lock").write_text(LockOwner(4242, "elsewhere", "99").text())
    for overwrite, resume in ((False, True), (True, False)):
        with pytest.raises(RunFolderError, match=r"locked by process 4242 on host 'elsewhere', not this one .* "
                                                 r"if that run has ended, delete .*/t/\.lock and rerun"):
            RunFolder.claim(str(tmp_path), "t", overwrite=overwrite, resume=resume)
    assert (run_dir / ".lock").is_file() and (run_dir / "run.json").is_file()


@contextmanager
def _file_size_limit(limit: int):
    """Writes beyond `limit` bytes per file fail (EFBIG) as on a full disk: a real failed write."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_lock_or_png_that_cannot_be_written_leaves_nothing_behind(tmp_path):
    with _file_size_limit(0):
        with pytest.raises(RunFolderError, match=r"cannot write .*/t/\.lock: File too large"):
            RunFolder.claim(str(tmp_path / "new"), "t", overwrite=False, resume=False)
    assert list((tmp_path / "new").iterdir()) == []  # no empty lock, no empty run folder
    run_dir = _finished_run(tmp_path / "over")
    with _file_size_limit(0):
        with pytest.raises(RunFolderError, match=r"cannot write"):
            RunFolder.claim(str(tmp_path / "over"), "t", overwrite=True, resume=False)
    assert [p.name for p in (tmp_path / "over").iterdir()] == ["t"] and (run_dir / "run.json").is_file()
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with _file_size_limit(100):
        with pytest.raises(OSError):
            write_png(tmp_path / "png" / "a.png", image)
    assert list((tmp_path / "png").iterdir()) == []  # no .a.png.tmp, no a.png
