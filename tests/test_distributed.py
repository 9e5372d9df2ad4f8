"""Distributed primitives (uir.common.distributed): the one-process context, sharding, and
two-process gloo runs of tests/dist_script.py, under torchrun and as plain processes given
torchrun's environment variables: every index once, failures end every rank with a message."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uir.common.distributed import DistContext

TESTS = Path(__file__).resolve().parent
SCRIPT = TESTS / "dist_script.py"
LIMIT_S = 60  # every run below ends in seconds; this only stops a hung test


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**base, "OMP_NUM_THREADS": "1", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(SCRIPT), *args], env=env(), capture_output=True, text=True, timeout=LIMIT_S)
    return proc, time.monotonic() - start


def plain_processes(*args: str) -> tuple[list[int], list[str], float]:
    """Two processes with torchrun's variables set by hand (no agent to stop the others)."""
    port = str(free_port())
    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2",
                                                 MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
             for r in range(2)]
    outputs, codes = [], []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=LIMIT_S)
            outputs.append(out)
            codes.append(p.returncode)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return codes, outputs, time.monotonic() - start


# --- one process ---------------------------------------------------------------------------

def test_without_torchrun_variables_it_is_one_process():
    ctx = DistContext.from_env("cpu", environ={})
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed) == (0, 1, True, False)
    assert ctx.shard([5, 6, 7]) == [5, 6, 7]
    assert ctx.gather({"a": 1}) == [{"a": 1}]
    assert ctx.broadcast("x") == "x"
    with ctx.guard():
        ctx.barrier()
        ctx.check()


@pytest.mark.parametrize("world, expected", [(2, [[0, 2, 4, 6], [1, 3, 5]]), (3, [[0, 3, 6], [1, 4], [2, 5]]),
                                             (8, [[0], [1], [2], [3], [4], [5], [6], []])])
def test_shards_take_every_index_once_without_padding(world, expected):
    shards = [DistContext(rank, world).shard(list(range(7))) for rank in range(world)]
    assert shards == expected
    assert sorted(i for s in shards for i in s) == list(range(7))


@pytest.mark.parametrize("environ, message", [
    ({"RANK": "0"}, "environment variable RANK is set but WORLD_SIZE is not"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2: must be below WORLD_SIZE=2"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x': expected an integer"),
])
def test_bad_environment_is_named(environ, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        DistContext.from_env("cpu", environ=environ)


def test_world_of_one_needs_no_process_group():
    ctx = DistContext.from_env("cpu", environ={"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    assert not ctx.is_distributed and ctx.gather(3) == [3]


# --- two processes, gloo -------------------------------------------------------------------

def test_torchrun_shards_gathers_every_index_once_and_broadcasts():
    proc, _ = torchrun("shard", "7")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "GATHERED " in line)
    gathered = json.loads(line.split("GATHERED ", 1)[1])
    assert gathered == [{"rank": 0, "indices": [0, 2, 4, 6]}, {"rank": 1, "indices": [1, 3, 5]}]
    assert "RANK 0 GOT run folder of rank 0" in proc.stdout and "RANK 1 GOT run folder of rank 0" in proc.stdout


def test_torchrun_failing_rank_ends_the_run():
    proc, seconds = torchrun("fail", "1")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "ValueError: boom on purpose in rank 1" in output
    assert seconds < 30


@pytest.mark.parametrize("failing", [1, 0])
def test_failing_rank_is_named_by_the_other(failing):
    codes, outputs, seconds = plain_processes("fail", str(failing))
    other = 1 - failing
    assert codes[failing] != 0 and codes[other] != 0
    assert "ValueError: boom on purpose" in outputs[failing]
    assert f"RankFailure: rank {failing} failed (ValueError: boom on purpose in rank {failing}); rank {other} stops too" \
        in outputs[other]
    assert seconds < 20


def test_rank_that_never_arrives_is_named_after_the_timeout():
    """Rank 1 sleeps; rank 0 gives up after the script's 4 s timeout and names it. (Rank 1 is
    then stopped by the test, as torchrun's agent would stop it.)"""
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), "hang", "1"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=env(RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
             for r in range(2)]
    try:
        start = time.monotonic()
        out, _ = procs[0].communicate(timeout=LIMIT_S)
        seconds = time.monotonic() - start
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert procs[0].returncode != 0
    assert "RankFailure: rank 0 waited 4 s at barrier for rank(s) 1, which did not arrive; stopping" in out
    assert 4 <= seconds < 30
