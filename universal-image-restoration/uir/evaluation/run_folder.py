"""Run folders: where a run writes, claimed atomically, never overwritten unasked, resumable.

Layout of ``<results_root>/<name>[_N]/``::

    options.yml                      the resolved options (every key, defaults included)
    run.json                         status (running / finished / interrupted / failed), device, times,
                                     the settings fingerprint a resume must match
    .lock                            the run that holds the folder, while it runs: process id, host and
                                     the process's start time (a reused process id is not the holder)
    test.log                         the log
    per_image.csv                    one row per (task, sweep point, image)
    results.csv | .md | .json        one row per (task, sweep point)
    <task>/<label or sampler>_nfe<N>/<image><suffix>.png

A new run claims a folder with an atomic ``mkdir`` (``<name>``, else ``<name>_2``, ``_3``, ...),
so two runs started together never share one. ``overwrite`` moves the old ``<name>`` aside and
deletes it only once the new run has its first result (it is put back if the new run fails
before that, and by the next claim of the name if it was killed before that: `recover_replaced`).
``resume`` continues the newest ``<name>[_N]`` (or a given folder) unless another
live process holds it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from uir.common.errors import RunFolderError
from uir.evaluation.run_lock import LOCK_FILE, LockOwner, lock_holder, process_start, take_lock, write_error

logger = logging.getLogger(__name__)

OPTIONS_FILE = "options.yml"
STATUS_FILE = "run.json"
LOG_FILE = "test.log"
# `--overwrite` keeps the run it replaces as `.<name>.replaced-<pid>-<start>` (the process that
# moved it: `LockOwner`) until its first result, then renames it `.<name>.discarded-<pid>-<start>`
# and deletes it. Earlier versions wrote `.<name>.replaced-<pid>`.
REPLACED = "replaced"
DISCARDED = "discarded"


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


def _mkdir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"{what}: cannot create {path}: {exc.strerror or exc}") from exc


def _aside_name(name: str, state: str) -> str:
    return f".{name}.{state}-{os.getpid()}-{process_start(os.getpid()) or 0}"


def _stale_asides(root: Path, name: str, state: str) -> list[Path]:
    """`name`'s runs set aside in `state` by an --overwrite whose process is gone."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.{state}-(\d+)(?:-(\d+))?$")
    found = [(child, m) for child in (root.iterdir() if root.is_dir() else ()) if (m := pattern.match(child.name))]
    return sorted(child for child, m in found
                  if not LockOwner(int(m.group(1)), socket.gethostname(), m.group(2) or None).alive())


def _killed_replacement(target: Path) -> bool:
    """Whether `target` is what an `--overwrite` killed before its first result leaves: nothing,
    or a run folder (or its bare lock) that never finished and that no live process holds."""
    if not target.exists():
        return True
    if target.is_symlink() or not target.is_dir() or lock_holder(target) is not None:
        return False
    if not is_run_folder(target):
        return {p.name for p in target.iterdir()} <= {LOCK_FILE}
    return RunFolder(target, "new").status().get("status") != "finished"


def recover_replaced(root: Path, name: str) -> None:
    """Put back a run that an `--overwrite` of `name` moved aside and then died (SIGKILL, power
    loss) before its first result, replacing the unfinished folder it left; a leftover of a
    deletion that was cut short is deleted. Where the state is not that one, raise, saying where
    the replaced run is. An `--overwrite` still running (its folder locked) is left alone."""
    for discarded in _stale_asides(root, name, DISCARDED):
        shutil.rmtree(discarded, ignore_errors=True)
    replaced = _stale_asides(root, name, REPLACED)
    target = root / name
    if not replaced or (target.exists() and lock_holder(target) is not None):
        return
    if len(replaced) > 1 or not _killed_replacement(target):
        raise RunFolderError(
            f"{target}: an earlier --overwrite ended before its first result and left the run it replaced in "
            f"{', '.join(map(str, replaced))}; move the one to keep back to {target} (and delete {target} first "
            f"if it holds nothing you need), then rerun")
    if target.exists():
        shutil.rmtree(target)
    replaced[0].rename(target)
    logger.warning("%s: put back the run that an earlier --overwrite had moved aside (%s) and that ended before its "
                   "first result", target, replaced[0].name)


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
        recover_replaced(root, name)
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
            try:
                if take_lock(path):
                    return cls(path, "new")
            except RunFolderError:
                path.rmdir()  # ours, and empty: the lock could not be written
                raise
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
            raise RunFolderError(f"resume: {holder.refusal(folder)}")
        (folder / LOCK_FILE).unlink(missing_ok=True)  # stale: its process is gone
        if not take_lock(folder):
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
                raise RunFolderError(f"overwrite (--overwrite): {holder.refusal(target)}")
            aside = root / _aside_name(name, REPLACED)
            target.rename(aside)
        _mkdir(root, "results_root")
        try:
            target.mkdir()
        except FileExistsError as exc:
            if aside is not None:
                aside.rename(target) if not target.exists() else None
            raise RunFolderError(f"overwrite (--overwrite): another run created {target} just now") from exc
        folder = cls(target, "overwrite", aside)
        try:
            taken = take_lock(target)
        except RunFolderError:
            folder.put_back()
            raise
        if not taken:  # a new run took the empty folder between the mkdir and the lock
            raise RunFolderError(f"overwrite (--overwrite): another run claimed {target} just now; the run it was to "
                                 f"replace is in {aside}")
        return folder

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
            raise write_error(path, exc) from exc

    def first_result(self) -> None:
        """The new run has a result: the run it replaces is deleted now (renamed to `discarded`
        first, so that a kill during the deletion leaves nothing that looks replaceable)."""
        if self.aside is not None:
            discarded = self.aside.with_name(self.aside.name.replace(f".{REPLACED}-", f".{DISCARDED}-"))
            self.aside.rename(discarded)
            self.aside = None
            shutil.rmtree(discarded, ignore_errors=True)

    def put_back(self) -> None:
        """No result yet: delete this run and put the run it replaces back."""
        if self.aside is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.aside.rename(self.path)
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
            self.put_back()  # with no result yet, the replaced run comes back
            raise
        self.write_status(status="finished", finished=time.strftime("%Y-%m-%d %H:%M:%S"))

    def release(self) -> None:
        """Give the folder up (remove this process's lock); a replaced run comes back if this one
        ended before its first result, however it ended."""
        self.put_back()
        try:
            owner = LockOwner.parse((self.path / LOCK_FILE).read_text(encoding="utf-8"))
            if owner is not None and owner.is_this_process:
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
