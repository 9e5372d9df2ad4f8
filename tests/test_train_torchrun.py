"""`torchrun --nproc_per_node=2 train.py` (gloo, on the CPU) against one process: a context
UNet conditioned by a tiny DA-CLIP trains, one step of 2 processes with 2 items each is one
step of one process with 4 (to float tolerance), rank 0 alone writes, and a run resumes with
another number of processes. (One thread per process everywhere, as torchrun sets it.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers import REPO
from train_workspace import make_train_workspace, md_options

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "universal-image-restoration")}


def run_train_py(options: dict, path: Path, nproc: int, *flags: str) -> subprocess.CompletedProcess:
    path.write_text(yaml.safe_dump(options))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command = (launcher if nproc > 1 else [sys.executable]) + ["train.py", "-opt", str(path), "--no-progress", *flags]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(run / "models" / name, weights_only=True)


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_two_processes_train_as_one_and_resume_with_one(tmp_path):
    ws = make_train_workspace(tmp_path)
    exp = ws / "experiments"
    one = md_options(ws, name="one", **{"train.niter": 3})
    run_train_py(one, ws / "one.yml", 1)
    run_train_py(md_options(ws, name="two", **{"train.niter": 2}), ws / "two.yml", 2)

    log = (exp / "two" / "train.log").read_text()
    assert "2 processes (cpu), 2 items each per step" in log and "DA-CLIP contexts from" in log
    assert log.count("validation at step 2") == 1
    start = weights(exp / "one", "1_G.pth")
    for step in (1, 2):  # the same steps as one process with the whole batch
        assert_close(weights(exp / "one", f"{step}_G.pth"), weights(exp / "two", f"{step}_G.pth"))
    moved = max((weights(exp / "two", "2_G.pth")[k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-4  # it trains

    # Resume the 2-process run with one process: step 3 is the one-process run's step 3.
    run_train_py(md_options(ws, name="two", **{"train.niter": 3}), ws / "two.yml", 1, "--resume")
    assert_close(weights(exp / "one", "3_G.pth"), weights(exp / "two", "3_G.pth"))
    assert_close(weights(exp / "one", "latest.pth"), weights(exp / "two", "lastest_EMA.pth"))
    assert "resumed from" in (exp / "two" / "train.log").read_text()
