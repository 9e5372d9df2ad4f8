"""`torchrun --nproc_per_node=2 test.py` (gloo, on the CPU) against one process: the same PNG
bytes and the same table, a resume across a change of the number of processes, and a failure on
one rank that ends the run with a message. (One thread per process in both: on the CPU the
thread count changes a few 8-bit pixels, whatever the sharding.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from uir.evaluation import read_csv
from workspace import make_workspace, raw_options

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "universal-image-restoration")}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("torchrun"))


def opt_file(ws: Path, name: str, results: str, **extra) -> Path:
    raw = raw_options(ws, results, distortion=["noisy", "hazy"], batch_size=1,
                      sweep={"samplers": ["posterior", "mrsampler"], "nfe": [2]}, **extra)
    path = ws / f"{name}.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_test_py(argv: list, nproc: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command = (launcher if nproc > 1 else [sys.executable]) + ["test.py", *map(str, argv)]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


def pngs(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*.png"))}


def numbers(run_dir: Path) -> list[dict]:
    """The table without its timings."""
    return [{k: v for k, v in row.items() if k != "sec_per_image"} for row in read_csv(run_dir / "results.csv")]


def test_two_processes_write_the_bytes_and_table_of_one(ws):
    one = run_test_py(["-opt", opt_file(ws, "one", "r_one")])
    assert one.returncode == 0, one.stderr
    two = run_test_py(["-opt", opt_file(ws, "two", "r_two")], nproc=2)
    assert two.returncode == 0, two.stderr
    a, b = ws / "r_one" / "t", ws / "r_two" / "t"
    assert len(pngs(a)) == 12 and pngs(a) == pngs(b)
    assert numbers(a) == numbers(b)
    key = lambda r: (r["task"], r["label"], r["nfe"], r["image"])  # noqa: E731
    per_image = lambda d: sorted(({k: v for k, v in r.items() if k != "seconds"} for r in read_csv(d / "per_image.csv")),
                                 key=key)  # noqa: E731
    assert per_image(a) == per_image(b)
    assert not list(b.glob("per_image.rank*.csv")) and not list(b.glob(".*lock"))
    assert two.stdout.count("| noisy | posterior |") == 1  # rank 0 alone prints the table


def test_resume_across_a_change_of_the_number_of_processes(ws):
    first = run_test_py(["-opt", opt_file(ws, "grow", "r_grow")], nproc=2)
    assert first.returncode == 0, first.stderr
    grown = run_test_py(["-opt", opt_file(ws, "grow", "r_grow"), "--resume", "--nfe", "2", "3"])
    assert grown.returncode == 0, grown.stderr
    whole = run_test_py(["-opt", opt_file(ws, "whole", "r_whole"), "--nfe", "2", "3"])
    assert whole.returncode == 0, whole.stderr
    assert pngs(ws / "r_grow" / "t") == pngs(ws / "r_whole" / "t")
    assert sorted(map(str, numbers(ws / "r_grow" / "t"))) == sorted(map(str, numbers(ws / "r_whole" / "t")))


def test_a_failing_rank_ends_the_run_with_a_message(ws, tmp_path):
    data = tmp_path / "data"
    (data / "noisy" / "LQ").mkdir(parents=True)
    (data / "noisy" / "GT").mkdir(parents=True)
    source = (ws / "data" / "noisy" / "LQ" / "a.png").read_bytes()
    for name in ("a", "b"):  # b, rank 1's batch, is cut short: its header reads, its pixels do not
        (data / "noisy" / "GT" / f"{name}.png").write_bytes((ws / "data" / "noisy" / "GT" / "a.png").read_bytes())
        (data / "noisy" / "LQ" / f"{name}.png").write_bytes(source if name == "a" else source[: len(source) // 2])
    opt = opt_file(ws, "broken", str(tmp_path / "res"), data_root=str(data))
    with open(opt) as f:
        raw = yaml.safe_load(f)
    raw["distortion"] = ["noisy"]
    opt.write_text(yaml.safe_dump(raw))
    result = run_test_py(["-opt", opt], nproc=2)
    assert result.returncode != 0
    assert "cannot read image" in result.stderr and "b.png" in result.stderr
    status = yaml.safe_load((tmp_path / "res" / "t" / "run.json").read_text())
    assert status["status"] == "failed" and "rank 1" in status["error"]
