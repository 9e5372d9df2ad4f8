"""Runs over several processes with `torchrun` and `torch.distributed` (test.py and train.py).

`DistContext.from_env()` reads torchrun's RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR /
MASTER_PORT) and joins the process group: gloo on the CPU, nccl on CUDA, one GPU per process
(cuda:LOCAL_RANK). Without those variables (plain ``python test.py``) it is a one-process
context whose methods do nothing, so callers need no special case.

- `shard(items)`: this rank's items by position, r, r + W, r + 2W, ... (as BasicSR's
  dist_validation): every item once, none twice, no padding.
- `gather(obj)`: every rank's object, in rank order, on rank 0 (None elsewhere);
  `broadcast(obj)`: rank 0's object on every rank.
- `mean(value)`: the mean of every rank's number (e.g. a loss for the log).
- `barrier()`, `check()`: wait for all ranks / stop if another rank failed.
- `guard()`: a `with` block for the whole run. A rank that raises leaves a note in the
  rendezvous store; the others raise `RankFailure` naming it at their next `barrier`, `gather`
  or `check`, and a rank that never arrives is reported after `timeout_s`. Under torchrun the
  agent also stops every rank as soon as one exits with an error.

The barrier is kept in the store (polled every `POLL_S`), not a collective, so that a wait
ends as soon as a failure note appears, however long the healthy ranks may wait for slow ones.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 1800.0  # torch's default for a collective; a barrier waits as long
POLL_S = 0.05
# How long (at most; never beyond timeout_s) rank 0, which hosts the store outside torchrun,
# waits for the others to read a failure note before it exits.
FAILURE_GRACE_S = 10.0
ENV_VARS = ("RANK", "WORLD_SIZE")


class RankFailure(RuntimeError):
    """Another rank failed, disappeared or did not arrive in time; this rank stops too."""


def _env_int(environ: Mapping[str, str], name: str, minimum: int) -> int:
    value = environ[name]
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None
    if number < minimum:
        raise ValueError(f"environment variable {name}={number}: must be >= {minimum}")
    return number


def _rank_device(kind: str, local_rank: int) -> torch.device:
    """`kind` auto|cpu|cuda as the device of this rank: cuda:LOCAL_RANK for CUDA."""
    if kind not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: {kind!r} is not valid under torchrun; valid values: auto, cpu, cuda "
                         f"(each rank uses cuda:LOCAL_RANK)")
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(f"LOCAL_RANK={local_rank} needs CUDA device {local_rank}, but this machine has {count}; "
                         f"start at most {count} processes per node, or use device: cpu")
    return torch.device("cuda", local_rank)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class DistContext:
    """This process's place in the run: `rank` of `world_size`, and its `device`."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0,
                 device: torch.device | None = None, *, store: Any = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device = device or torch.device("cpu")
        self.timeout_s = timeout_s
        self._store = store  # a PrefixStore of the rendezvous store; None in one process
        self._generation = 0
        self._closed = False

    @classmethod
    def from_env(cls, device: str = "auto", *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 environ: Mapping[str, str] | None = None) -> DistContext:
        """Join torchrun's process group, or a one-process context when RANK and WORLD_SIZE are unset."""
        environ = os.environ if environ is None else environ
        given = [name for name in ENV_VARS if name in environ]
        if not given:
            return cls(device=_rank_device(device, 0), timeout_s=timeout_s)
        if len(given) < len(ENV_VARS):
            missing = next(name for name in ENV_VARS if name not in environ)
            raise ValueError(f"environment variable {given[0]} is set but {missing} is not; start the run "
                             f"with torchrun, which sets both, or unset {given[0]}")
        world_size = _env_int(environ, "WORLD_SIZE", 1)
        rank = _env_int(environ, "RANK", 0)
        if rank >= world_size:
            raise ValueError(f"environment variable RANK={rank}: must be below WORLD_SIZE={world_size}")
        local_rank = _env_int(environ, "LOCAL_RANK", 0) if "LOCAL_RANK" in environ else rank
        rank_device = _rank_device(device, local_rank)
        if world_size == 1:
            return cls(0, 1, local_rank, rank_device, timeout_s=timeout_s)
        return cls._join(rank, world_size, local_rank, rank_device, timeout_s)

    @classmethod
    def _join(cls, rank: int, world_size: int, local_rank: int, device: torch.device, timeout_s: float) -> DistContext:
        timeout = timedelta(seconds=timeout_s)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        store, _, _ = next(dist.rendezvous("env://", rank, world_size, timeout=timeout))
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, store=dist.PrefixStore("pg", store), rank=rank, world_size=world_size,
                                timeout=timeout)
        return cls(rank, world_size, local_rank, device, store=dist.PrefixStore("uir", store), timeout_s=timeout_s)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self._store is not None

    def __repr__(self) -> str:
        return f"DistContext(rank={self.rank}, world_size={self.world_size}, device={self.device})"

    # ---- work ----------------------------------------------------------------------------

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items: positions rank, rank + world_size, ... (all of them in one process)."""
        return list(items[self.rank::self.world_size])

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` (picklable), in rank order, on rank 0; None on the other ranks."""
        if not self.is_distributed:
            return [obj]
        self.barrier("gather")
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` (picklable) on every rank, e.g. the run folder it chose."""
        if not self.is_distributed:
            return obj
        self.barrier("broadcast")
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float) -> float:
        """The mean of every rank's `value` (a collective: every rank calls it at the same point)."""
        if not self.is_distributed:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.item() / self.world_size

    def barrier(self, what: str = "barrier") -> None:
        """Wait until every rank arrives; `RankFailure` if one failed or `timeout_s` passes."""
        if not self.is_distributed:
            return
        self._generation += 1
        key = f"{what}/{self._generation}"
        self._store_call(self._store.set, f"{key}/{self.rank}", "1")
        self._store_call(self._store.add, f"{key}/count", 1)
        deadline = time.monotonic() + self.timeout_s
        while int(self._store_call(self._store.add, f"{key}/count", 0)) < self.world_size:
            self.check()
            if time.monotonic() > deadline:
                missing = [r for r in range(self.world_size) if not self._store_call(self._store.check, [f"{key}/{r}"])]
                raise RankFailure(f"rank {self.rank} waited {self.timeout_s:g} s at {what} for rank(s) "
                                  f"{', '.join(map(str, missing))}, which did not arrive; stopping")
            time.sleep(POLL_S)

    def check(self) -> None:
        """Raise `RankFailure` if another rank has left a failure note (cheap: one store query)."""
        if not self.is_distributed or int(self._store_call(self._store.add, "failed", 0)) == 0:
            return
        for r in range(self.world_size):
            if r != self.rank and self._store_call(self._store.check, [f"failed/{r}"]):
                note = self._store_call(self._store.get, f"failed/{r}").decode()
                raise RankFailure(f"rank {r} failed ({note}); rank {self.rank} stops too")

    # ---- ending --------------------------------------------------------------------------

    @contextmanager
    def guard(self) -> Iterator[DistContext]:
        """``with ctx.guard():`` around the run: a failure here is announced to the other ranks,
        and the process group is closed on the way out, in every case."""
        try:
            yield self
        except RankFailure:
            self.close(grace_s=FAILURE_GRACE_S)
            raise
        except BaseException as exc:
            self.fail(exc)
            raise
        self.close()

    def fail(self, exc: BaseException) -> None:
        """Leave a note naming this rank and `exc` for the others, then close."""
        if self.is_distributed and not self._closed:
            try:
                self._store.set(f"failed/{self.rank}", _describe(exc))
                self._store.add("failed", 1)
            except Exception:  # noqa: BLE001 -- the store may be gone already; closing still matters
                pass
        self.close(grace_s=FAILURE_GRACE_S)

    def close(self, grace_s: float | None = None) -> None:
        """Leave the process group. Rank 0 first waits (up to `timeout_s`, or `grace_s` after a
        failure) for the others to leave, since outside torchrun its process hosts the store."""
        if not self.is_distributed or self._closed:
            return
        self._closed = True
        try:
            self._store.add("closed", 1)
            if self.is_main:
                deadline = time.monotonic() + min(self.timeout_s, grace_s or self.timeout_s)
                while int(self._store.add("closed", 0)) < self.world_size and time.monotonic() < deadline:
                    time.sleep(POLL_S)
        except Exception:  # noqa: BLE001 -- the store is gone: nobody left to wait for
            pass
        finally:
            dist.destroy_process_group()

    # ---- the store -----------------------------------------------------------------------

    def _store_call(self, fn, *args):
        try:
            return fn(*args)
        except RankFailure:
            raise
        except Exception as exc:  # noqa: BLE001 -- store errors differ between torch versions
            raise RankFailure(f"rank {self.rank} lost the rendezvous store ({_describe(exc)}): the process that "
                              f"holds it (torchrun, or rank 0) has stopped") from exc
