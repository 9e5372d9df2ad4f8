"""Run folders: where a run writes, how it avoids overwriting, and how it resumes.

Layout of ``<results_root>/<name>[_N]/``::

    options.yml                      the resolved options (every key, defaults included)
    run.json                         status (running / finished / interrupted), device, times
    test.log                         the log
    per_image.csv                    one row per (task, sampler, nfe, image)
    results.csv | .md | .json        one row per (task, sampler, nfe)
    <task>/<sampler>_nfe<N>/<image><suffix>.png

A new run never reuses a folder that exists: it takes ``<name>_2``, ``<name>_3``, ...
``overwrite`` replaces ``<name>`` (only if it is a run folder); ``resume`` continues the
newest ``<name>[_N]`` (or a given folder), skipping the images its per-image CSV lists.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from uir.common.errors import RunFolderError
from uir.evaluation.tables import PER_IMAGE_COLUMNS, append_csv_row, read_csv, write_csv

OPTIONS_FILE = "options.yml"
STATUS_FILE = "run.json"
LOG_FILE = "test.log"
PER_IMAGE_FILE = "per_image.csv"
# Options that change a run's numbers: a run resumes only when these are unchanged.
FINGERPRINT_KEYS = (
    "sde", "sampler", "network_G", "seed", "precision", "crop_border", "degradation", "suffix",
    "daclip_config", "daclip_precision", "metrics", "lpips", "save_images",
)


def run_dir_name(name: str, n: int) -> str:
    return name if n == 1 else f"{name}_{n}"


def existing_runs(results_root: Path, name: str) -> list[Path]:
    """`<name>` and `<name>_N` folders under `results_root`, oldest (lowest N) first."""
    if not results_root.is_dir():
        return []
    pattern = re.compile(rf"^{re.escape(name)}(?:_(\d+))?$")
    found = []
    for child in results_root.iterdir():
        match = pattern.match(child.name)
        if child.is_dir() and match:
            found.append((int(match.group(1) or 1), child))
    return [path for _, path in sorted(found)]


def is_run_folder(path: Path) -> bool:
    return (path / STATUS_FILE).is_file() or (path / OPTIONS_FILE).is_file()


def choose_run_dir(results_root: str, name: str, *, overwrite: bool, resume: bool | str) -> tuple[Path, str]:
    """`(folder, mode)` with mode "new", "overwrite" or "resume"."""
    root = Path(results_root)
    if isinstance(resume, str):
        folder = Path(resume)
        if not is_run_folder(folder):
            raise RunFolderError(f"resume (--resume): {folder} is not a run folder (it has no {STATUS_FILE} / {OPTIONS_FILE})")
        return folder, "resume"
    if resume:
        runs = [p for p in existing_runs(root, name) if is_run_folder(p)]
        if runs:
            return runs[-1], "resume"
        return root / name, "new"
    target = root / name
    if overwrite:
        if target.exists() and any(target.iterdir()) and not is_run_folder(target):
            raise RunFolderError(
                f"overwrite (--overwrite): {target} exists but is not a run folder (no {STATUS_FILE}); "
                f"refusing to delete it; choose another name or results_root"
            )
        return target, "overwrite"
    n = 1
    while (root / run_dir_name(name, n)).exists() and any((root / run_dir_name(name, n)).iterdir()):
        n += 1
    return root / run_dir_name(name, n), "new"


def fingerprint(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The number-changing part of a resolved options mapping (`EvalOptions.to_dict()`)."""
    out = {key: resolved.get(key) for key in FINGERPRINT_KEYS}
    if isinstance(out.get("sampler"), Mapping):
        out["sampler"] = {k: v for k, v in out["sampler"].items() if k != "num_sample_steps"}
    return out


def check_resumable(folder: Path, resolved: Mapping[str, Any]) -> None:
    """Raise RunFolderError unless `folder`'s saved options give the same numbers as `resolved`."""
    saved_file = folder / OPTIONS_FILE
    if not saved_file.is_file():
        raise RunFolderError(f"resume: {folder} has no {OPTIONS_FILE}; cannot check it was made with these options")
    saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
    old, new = fingerprint(saved), fingerprint(resolved)
    differ = [key for key in FINGERPRINT_KEYS if old.get(key) != new.get(key)]
    if differ:
        details = "; ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in differ)
        raise RunFolderError(
            f"resume: {folder} was made with other settings ({details}); its results would not be "
            f"comparable. Start a new run (drop --resume) or restore those options."
        )


class RunFolder:
    """One run's folder: chosen without overwriting (`choose`), prepared (`prepare`: the resume
    check, the old run removed on overwrite, the options saved) and given a status while the run
    lives (`with folder.running(...)`: running, then finished, interrupted or failed)."""

    def __init__(self, path: Path, mode: str):
        self.path = path
        self.mode = mode  # "new", "overwrite" or "resume"

    @classmethod
    def choose(cls, results_root: str, name: str, *, overwrite: bool, resume: bool | str) -> "RunFolder":
        return cls(*choose_run_dir(results_root, name, overwrite=overwrite, resume=resume))

    @property
    def resuming(self) -> bool:
        return self.mode == "resume"

    def prepare(self, resolved: Mapping[str, Any]) -> None:
        """Check a resumed folder's options, clear an overwritten one, save the options."""
        if self.resuming:
            check_resumable(self.path, resolved)
        if self.mode == "overwrite" and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(dict(resolved), sort_keys=False, default_flow_style=None)
        (self.path / OPTIONS_FILE).write_text(text, encoding="utf-8")

    def write_status(self, **fields: Any) -> None:
        path = self.path / STATUS_FILE
        status = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        status.update(fields, updated=time.strftime("%Y-%m-%d %H:%M:%S"))
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @contextmanager
    def running(self, **info: Any) -> Iterator[None]:
        """Status `running` (with `info`) while the block runs; `finished` when it ends normally,
        `interrupted` (Ctrl-C) or `failed` (with the error) when it raises."""
        self.write_status(status="running", mode=self.mode, started=time.strftime("%Y-%m-%d %H:%M:%S"), **info)
        try:
            yield
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            self.write_status(status="interrupted" if interrupted else "failed", error=str(exc) or type(exc).__name__)
            raise
        self.write_status(status="finished", finished=time.strftime("%Y-%m-%d %H:%M:%S"))


class PerImageLog:
    """`per_image.csv`: rows are appended (thread-safe, flushed) as images finish.

    With `resume`, rows whose restored PNG is missing are dropped, so those images run again.
    """

    def __init__(self, folder: Path, *, resume: bool):
        self.folder = folder
        self.path = folder / PER_IMAGE_FILE
        rows = read_csv(self.path) if resume and self.path.is_file() else []
        self.rows = [r for r in rows if not r.get("output") or (folder / r["output"]).is_file()]
        write_csv(self.path, self.rows, PER_IMAGE_COLUMNS)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", newline="", encoding="utf-8")

    def done(self) -> set[tuple[str, str, int, str]]:
        with self._lock:
            return {(r["task"], r["sampler"], int(r["nfe"]), r["image"]) for r in self.rows}

    def append(self, row: Mapping[str, Any]) -> None:
        with self._lock:
            self.rows.append(dict(row))
            append_csv_row(self._file, row, PER_IMAGE_COLUMNS)
            self._file.flush()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.rows)

    def close(self) -> None:
        with self._lock:
            self._file.close()


@contextmanager
def log_to_file(path: Path, logger_names: tuple[str, ...] = ("uir",)) -> Iterator[None]:
    """Copy the INFO-and-up records of the named loggers to `path` while the block runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()
