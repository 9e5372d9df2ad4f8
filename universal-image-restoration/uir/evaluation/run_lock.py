"""The lock of a run folder: which process holds it (process id, host, the process's start time,
so that a reused process id is not taken for the holder), taken atomically, told apart from a
stale one."""
from __future__ import annotations

import errno
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from uir.common.errors import RunFolderError

LOCK_FILE = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat on
    Linux); None where that cannot be read (no such process, no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name (field 2) may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3


@dataclass(frozen=True)
class LockOwner:
    """The process a `.lock` names: its id, and (written since issue #26) its host and start
    time, which tell a reused process id from the process that took the lock."""

    pid: int
    host: str | None = None  # None: a lock of an older version (the pid alone)
    start: str | None = None  # `process_start(pid)` when the lock was taken; None where unknown

    @classmethod
    def this_process(cls) -> "LockOwner":
        return cls(os.getpid(), socket.gethostname(), process_start(os.getpid()))

    @classmethod
    def parse(cls, text: str) -> "LockOwner | None":
        """A lock's contents: JSON {pid, host, start}, or an older lock's bare pid; None if neither."""
        text = text.strip()
        try:
            if text.isdigit():
                return cls(int(text))
            raw = json.loads(text)
            return cls(int(raw["pid"]), raw.get("host"), raw.get("start"))
        except (ValueError, TypeError, KeyError):
            return None

    def text(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "start": self.start}) + "\n"

    @property
    def elsewhere(self) -> bool:
        """Taken on another host: this one cannot see whether that process still runs."""
        return self.host is not None and self.host != socket.gethostname()

    @property
    def is_this_process(self) -> bool:
        return not self.elsewhere and self.pid == os.getpid() and self.start in (None, process_start(self.pid))

    def alive(self) -> bool:
        """Whether the lock's process still runs: its pid is alive and, where the start time was
        recorded and can be read now, it started then (else the pid was reused); True for a lock
        of another host, which this one cannot check."""
        if self.elsewhere:
            return True
        if not _pid_alive(self.pid):
            return False
        now = process_start(self.pid) if self.start is not None else None
        return now is None or now == self.start

    def refusal(self, folder: Path) -> str:
        """Why `folder` cannot be taken, and what to do."""
        if self.elsewhere:
            return (f"{folder} is locked by process {self.pid} on host {self.host!r}, not this one "
                    f"({socket.gethostname()!r}), which cannot tell whether it still runs; if that run has ended, "
                    f"delete {folder / LOCK_FILE} and rerun")
        return f"{folder} is in use by a running process (pid {self.pid}); wait for it to end, or stop it"


def lock_holder(folder: Path) -> LockOwner | None:
    """The process that holds `folder`'s lock while it runs (or on another host); None when the
    lock is free, stale (its process is gone, or its pid now names another process), or ours."""
    try:
        owner = LockOwner.parse((folder / LOCK_FILE).read_text(encoding="utf-8"))
    except OSError:
        return None
    if owner is None or owner.is_this_process or not owner.alive():
        return None
    return owner


def take_lock(folder: Path) -> bool:
    """Create `folder`'s lock naming this process; False when another process made it first. A
    lock that cannot be written whole (a full disk) is removed and raises RunFolderError."""
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(LockOwner.this_process().text())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    return True


def write_error(path: Path, exc: OSError) -> RunFolderError:
    return RunFolderError(f"cannot write {path}: {exc.strerror or exc}"
                          + (" (the disk is full)" if exc.errno == errno.ENOSPC else ""))
