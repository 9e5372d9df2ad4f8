"""Run folders: where a run writes, claimed atomically, never overwritten unasked, resumable.

Layout of ``<results_root>/<name>[_N]/``::

    options.yml                      the resolved options (every key, defaults included)
    run.json                         status (running / finished / interrupted / failed), device, times,
                                     the settings fingerprint a resume must match
    .lock                            the process id of the run that holds the folder, while it runs
    test.log                         the log
    per_image.csv                    one row per (task, sweep point, image)
    results.csv | .md | .json        one row per (task, sweep point)
    <task>/<label or sampler>_nfe<N>/<image><suffix>.png

A new run claims a folder with an atomic ``mkdir`` (``<name>``, else ``<name>_2``, ``_3``, ...),
so two runs started together never share one. ``overwrite`` moves the old ``<name>`` aside and
deletes it only once the new run has its first result (it is put back if the new run fails
before that). ``resume`` continues the newest ``<name>[_N]`` (or a given folder) unless another
live process holds it.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from uir.common.errors import RunFolderError

logger = logging.getLogger(__name__)

OPTIONS_FILE = "options.yml"
STATUS_FILE = "run.json"
LOCK_FILE = ".lock"
LOG_FILE = "test.log"


def run_dir_name(name: str, n: int) -> str:
    return name if n == 1 else f"{name}_{n}"


def existing_runs(results_root: Path, name: str) -> list[Path]:
    """`<name>` and `<name>_N` folders under `results_root`, oldest (lowest N) first."""
    if not results_root.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(name)}(?:_(\d+))?$")
    found = [(int(m.group(1) or 1), child) for child in results_root.iterdir()
             if child.is_dir() and (m := pattern.match(child.name))]
    return [path for _, path in sorted(found)]


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and ((path / STATUS_FILE).is_file() or (path / OPTIONS_FILE).is_file())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(folder: Path) -> int | None:
    """The process id in `folder`'s lock when that process is alive (a stale lock counts as none)."""
    try:
        pid = int((folder / LOCK_FILE).read_text(encoding="utf-8").strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and pid != os.getpid() and _pid_alive(pid) else None


def _take_lock(folder: Path) -> bool:
    """Create `folder`'s lock with this process's id; False when another process made it first."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    return True


def _mkdir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{what}: cannot create {path}: {exc.strerror or exc}") from exc


class RunFolder:
    """One run's folder, held by this process from `claim` until `release`."""

    def __init__(self, path: Path, mode: str, aside: Path | None = None):
        self.path = path
        self.mode = mode  # "new", "overwrite" or "resume"
        self.aside = aside  # the replaced run, until the new one has a result

    # ---- choosing and claiming ----------------------------------------------------------
    @classmethod
    def claim(cls, results_root: str, name: str, *, overwrite: bool, resume: bool | str) -> "RunFolder":
        root = Path(results_root)
        if isinstance(resume, str) or resume:
            folder = cls._resumed(root, name, resume)
            if folder is not None:
                return folder
        elif overwrite:
            return cls._overwritten(root, name)
        _mkdir(root, "results_root")
        for n in range(1, 10_000):
            path = root / run_dir_name(name, n)
            try:
                path.mkdir()
            except FileExistsError:
                if not (path.is_dir() and not path.is_symlink() and not any(path.iterdir())):
                    continue  # taken (by a run, another file, or a folder with contents)
            except OSError as exc:
                raise RunFolderError(f"results_root: cannot create {path}: {exc.strerror or exc}") from exc
            if _take_lock(path):
                return cls(path, "new")
        raise RunFolderError(f"results_root: no free run folder name {name}_N under {root}")

    @classmethod
    def _resumed(cls, root: Path, name: str, resume: bool | str) -> "RunFolder | None":
        if isinstance(resume, str):
            folder = Path(resume)
            if not is_run_folder(folder):
                raise RunFolderError(f"resume (--resume): {folder} is not a run folder (it has no {STATUS_FILE} / "
                                     f"{OPTIONS_FILE})")
        else:
            runs = [p for p in existing_runs(root, name) if is_run_folder(p)]
            if not runs:
                return None  # nothing to resume: a new run
            folder = runs[-1]
        holder = lock_holder(folder)
        if holder is not None:
            raise RunFolderError(f"resume: {folder} is in use by a running process (pid {holder}); wait for it to "
                                 f"end, or stop it")
        (folder / LOCK_FILE).unlink(missing_ok=True)  # stale: its process is gone
        if not _take_lock(folder):
            raise RunFolderError(f"resume: another process claimed {folder} just now")
        return cls(folder, "resume")

    @classmethod
    def _overwritten(cls, root: Path, name: str) -> "RunFolder":
        target = root / name
        aside = None
        if target.is_symlink():
            raise RunFolderError(f"overwrite (--overwrite): {target} is a symbolic link; refusing to replace what it "
                                 f"points to; remove the link or choose another name")
        if target.exists():
            if not target.is_dir():
                raise RunFolderError(f"overwrite (--overwrite): {target} is a file, not a run folder; refusing to "
                                     f"replace it")
            if any(target.iterdir()) and not is_run_folder(target):
                raise RunFolderError(
                    f"overwrite (--overwrite): {target} exists but is not a run folder (no {STATUS_FILE}); "
                    f"refusing to delete it; choose another name or results_root"
                )
            holder = lock_holder(target)
            if holder is not None:
                raise RunFolderError(f"overwrite (--overwrite): {target} is in use by a running process (pid {holder})")
            aside = root / f".{name}.replaced-{os.getpid()}"
            target.rename(aside)
        _mkdir(root, "results_root")
        try:
            target.mkdir()
        except FileExistsError as exc:
            if aside is not None:
                aside.rename(target) if not target.exists() else None
            raise RunFolderError(f"overwrite (--overwrite): another run created {target} just now") from exc
        _take_lock(target)
        return cls(target, "overwrite", aside)

    @property
    def resuming(self) -> bool:
        return self.mode == "resume"

    # ---- life -----------------------------------------------------------------------------
    def save_options(self, resolved: Mapping[str, Any]) -> None:
        text = yaml.safe_dump(dict(resolved), sort_keys=False, default_flow_style=None)
        self._write_atomic(self.path / OPTIONS_FILE, text)

    def status(self) -> dict[str, Any]:
        path = self.path / STATUS_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            return {}

    def write_status(self, **fields: Any) -> None:
        status = self.status()
        status.update(fields, updated=time.strftime("%Y-%m-%d %H:%M:%S"))
        self._write_atomic(self.path / STATUS_FILE, json.dumps(status, indent=2) + "\n")

    @staticmethod
    def _write_atomic(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}"
                                 + (" (the disk is full)" if exc.errno == errno.ENOSPC else "")) from exc

    def first_result(self) -> None:
        """The new run has a result: the run it replaces is deleted now."""
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    @contextmanager
    def running(self, **info: Any) -> Iterator[None]:
        """Status `running` (with `info`) while the block runs; `finished` when it ends normally,
        `interrupted` (Ctrl-C, SIGTERM) or `failed` (with the error) when it raises. A status that
        cannot be written then (a full disk) is logged and never hides the run's own error."""
        self.write_status(status="running", mode=self.mode, started=time.strftime("%Y-%m-%d %H:%M:%S"), **info)
        try:
            yield
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            try:
                self.write_status(status="interrupted" if interrupted else "failed", error=str(exc) or type(exc).__name__)
            except RunFolderError as status_error:
                logger.error("%s", status_error)
            if self.aside is not None:  # no result yet: put the replaced run back
                shutil.rmtree(self.path, ignore_errors=True)
                self.aside.rename(self.path)
                self.aside = None
            raise
        self.write_status(status="finished", finished=time.strftime("%Y-%m-%d %H:%M:%S"))

    def release(self) -> None:
        """Give the folder up (remove this process's lock)."""
        try:
            if (self.path / LOCK_FILE).read_text(encoding="utf-8").strip() == str(os.getpid()):
                (self.path / LOCK_FILE).unlink()
        except OSError:
            pass


@contextmanager
def log_to_file(path: Path, logger_names: tuple[str, ...] = ("uir",)) -> Iterator[None]:
    """Copy the INFO-and-up records of the named loggers to `path` while the block runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for one in loggers:
        if one.getEffectiveLevel() > logging.INFO:
            one.setLevel(logging.INFO)
        one.addHandler(handler)
    try:
        yield
    finally:
        for one, level in zip(loggers, levels):
            one.removeHandler(handler)
            one.setLevel(level)
        handler.close()
