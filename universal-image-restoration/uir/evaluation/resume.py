"""What makes a run folder resumable, and its per-image record.

- `fingerprint(options)`: everything that changes a number of a restored image or its metrics:
  every option except those that only say where or how fast (listed in `NOT_FINGERPRINTED`) and
  the sweep and sampler keys (each point is checked on its own: a resumed run may add points),
  plus the identity of each checkpoint file (size, modification time, SHA-256 of its first
  and last MiB). A resumed run must have the same fingerprint; the differences are listed.
- `point_identities(options, points)`: what each sweep point is (its sampler, label, NFE and
  every effective sampler setting), recorded in `run.json`. A resumed run may add points; a
  point it already holds must be the same point (else the differences are listed), and no new
  point may take an earlier point's folder under another label.
- `PerImageLog`: `per_image.csv`, appended (thread-safe, flushed) as images finish. On resume
  it keeps the rows whose PNG is on disk, drops rows of images that failed (they run again),
  and drops a last line cut short (power loss, full disk) with a warning.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uir.common.errors import RunFolderError
from uir.evaluation.tables import append_csv_row, parse_row, write_csv
from uir.options.restorer import RestorerOptions
from uir.options.schema import EvalOptions
from uir.options.sweep import PointKey, SweepPoint
from uir.samplers.registry import SAMPLERS

logger = logging.getLogger(__name__)

PER_IMAGE_FILE = "per_image.csv"
# Options that change no number of a restored image: where the run goes, how it is batched and
# loaded, which sweep points and how many images it covers (a resumed run may add those), and
# the device (a run started on one machine may finish on another), and the extra records a run
# keeps (trajectories, the reference's workbooks).
NOT_FINGERPRINTED = ("name", "results_root", "overwrite", "resume", "batch_size", "num_workers", "max_images",
                     "sweep", "sampler", "device", "gpu_ids", "trajectory", "xlsx")
CHECKPOINT_KEYS = ("pretrain_model_G", "daclip")
HASHED_BYTES = 1 << 20


def file_identity(path: str | None) -> dict[str, Any] | None:
    """size, modification time and the SHA-256 of the first and last MiB of a file (None: unset)."""
    if path is None:
        return None
    file = Path(path).expanduser()
    if not file.is_file():
        return {"missing": str(file)}
    stat = file.stat()
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        digest.update(f.read(HASHED_BYTES))
        if stat.st_size > HASHED_BYTES:
            f.seek(max(HASHED_BYTES, stat.st_size - HASHED_BYTES))
            digest.update(f.read(HASHED_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_head_tail": digest.hexdigest()}


def fingerprint(options: EvalOptions) -> dict[str, Any]:
    """The number-changing settings of a run, flattened to dotted keys."""
    resolved = {k: v for k, v in options.to_dict().items() if k not in NOT_FINGERPRINTED}
    resolved["checkpoints"] = {k: file_identity(getattr(options.restorer.path, k)) for k in CHECKPOINT_KEYS}
    return _flatten(resolved)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def check_fingerprint(folder: Path, saved: Mapping[str, Any] | None, now: Mapping[str, Any]) -> None:
    """Raise RunFolderError listing every difference between the saved and the current fingerprint."""
    if saved is None:
        raise RunFolderError(f"resume: {folder} records no settings fingerprint (it was made by an older version or "
                             f"never started); start a new run instead")
    differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if differ:
        details = "; ".join(f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in differ)
        raise RunFolderError(
            f"resume: {folder} was made with other settings ({details}); its results would not be "
            f"comparable. Start a new run (drop --resume) or restore those settings."
        )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a per-image CSV; a last line cut short is dropped with a warning."""
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        cut = text[text.rfind("\n") + 1:]
        logger.warning("%s: its last line was cut short (%r); that image runs again", path, cut[:80])
        text = text[: len(text) - len(cut)]
    rows = []
    for number, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        try:
            rows.append(parse_row(row))
        except (TypeError, ValueError) as exc:
            logger.warning("%s: line %d is damaged (%s); that image runs again", path, number, exc)
    return rows


class PerImageLog:
    """`per_image.csv` on rank 0 (`per_image.rank<r>.csv` on rank r of a torchrun run, merged into
    it by rank 0 at the end): rows appended (thread-safe, flushed) as images finish."""

    def __init__(self, folder: Path, columns: tuple[str, ...], *, resume: bool, rank: int = 0):
        self.folder = folder
        self.columns = columns
        self.rank = rank
        self.path = folder / (PER_IMAGE_FILE if rank == 0 else f"per_image.rank{rank}.csv")
        self.earlier: list[dict[str, Any]] = []  # rank > 0: rank 0's record when the run started
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._file = None
        if rank == 0:
            self.rows = self._kept(resume)
            self._open()

    def _open(self) -> None:
        write_csv(self.path, self.rows, self.columns)
        self._file = open(self.path, "a", newline="", encoding="utf-8")

    def _kept(self, resume: bool) -> list[dict[str, Any]]:
        """Rank 0: the rows of earlier sessions worth keeping (a crashed multi-process session's
        rank files included, then deleted): those whose image is on disk and has a result."""
        files = [self.path, *sorted(self.folder.glob("per_image.rank*.csv"))]
        rows = [r for f in files if resume and f.is_file() for r in _read_rows(f)]
        for leftover in files[1:]:
            leftover.unlink()
        return [r for r in rows if not r.get("error") and (not r.get("output") or (self.folder / r["output"]).is_file())]

    def load(self) -> None:
        """Rank > 0, after rank 0 has merged what earlier sessions left (a barrier in between): read
        rank 0's record, and only then start this rank's file (rank 0 deletes stale rank files)."""
        if self.rank != 0:
            main = self.folder / PER_IMAGE_FILE
            self.earlier = _read_rows(main) if main.is_file() else []
            self._open()

    def done(self) -> set[tuple[PointKey, str]]:
        """(point, image) of every restoration on record."""
        with self._lock:
            return {(PointKey.of_row(r), r["image"]) for r in self.earlier + self.rows}

    def append(self, row: Mapping[str, Any]) -> None:
        with self._lock:
            self.rows.append(dict(row))
            append_csv_row(self._file, row, self.columns)
            self._file.flush()

    def collect_ranks(self, world_size: int) -> None:
        """Rank 0, at the end (its own file closed): append the other ranks' rows, delete their files."""
        with self._lock, open(self.path, "a", newline="", encoding="utf-8") as f:
            for rank in range(1, world_size):
                path = self.folder / f"per_image.rank{rank}.csv"
                if path.is_file():
                    for row in _read_rows(path):
                        self.rows.append(row)
                        append_csv_row(f, row, self.columns)
                    f.flush()
                    path.unlink()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.rows)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()


def point_identities(options: RestorerOptions, points: tuple[SweepPoint, ...]) -> dict[str, dict[str, Any]]:
    """{folder: {sampler, label, nfe, settings}} of each point, as JSON reads it back."""
    identities = {p.folder: {"sampler": p.sampler, "label": p.label, "nfe": p.nfe,
                             "settings": options.sampler_options(p).to_dict()} for p in points}
    return json.loads(json.dumps(identities))


def _differences(then: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    flat_then, flat_now = _flatten(dict(then)), _flatten(dict(now))
    return [f"{k}: {flat_then.get(k)!r} then, {flat_now.get(k)!r} now"
            for k in sorted(set(flat_then) | set(flat_now)) if flat_then.get(k) != flat_now.get(k)]


def check_points(folder: Path, earlier: Mapping[str, Mapping[str, Any]], now: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise RunFolderError when a point the folder holds would be resumed with other settings, or
    a new point's label would write into an earlier point's folder."""
    problems = []
    for name, identity in now.items():
        then = earlier.get(name)
        if then is None:
            continue
        label_then, label_now = then.get("label") or then["sampler"], identity.get("label") or identity["sampler"]
        if label_then != label_now:
            problems.append(f"the point {label_now!r} (nfe {identity['nfe']}) would write into the folder {name} of "
                            f"the earlier point {label_then!r}; give it a label whose folder is free")
            continue
        differ = _differences({k: v for k, v in then.items() if k != "label"},
                              {k: v for k, v in identity.items() if k != "label"})
        if differ:
            problems.append(f"the point {label_now!r} (nfe {identity['nfe']}) was made with other settings "
                            f"({'; '.join(differ)})")
    if problems:
        raise RunFolderError(f"resume: {folder}: {' / '.join(problems)}. Its finished images would be mixed with "
                             f"others; start a new run (drop --resume), restore those settings, or give the "
                             f"changed point a new label.")


def earlier_points(folder: Path, earlier: Mapping[str, Mapping[str, Any]], options: RestorerOptions
                   ) -> tuple[SweepPoint, ...]:
    """The points a folder records, as sweep points of `options` that give their recorded settings
    (`set:` holds what differs from `options`' sampler block)."""
    points = []
    for name, identity in earlier.items():
        try:
            sampler = SAMPLERS[identity["sampler"]]
        except ValueError as exc:
            raise RunFolderError(f"resume: {folder} holds points of sampler {identity['sampler']!r}, which is not "
                                 f"registered now; register it as the first session did ({exc})") from None
        base = options.sampler.options_for(sampler).to_dict()
        overrides = {k: v for k, v in identity["settings"].items() if k != "num_sample_steps" and base.get(k) != v}
        points.append(SweepPoint(identity["sampler"], int(identity["nfe"]), identity.get("label"),
                                 tuple(sorted(overrides.items()))))
    return tuple(points)


def merged_points(earlier: tuple[SweepPoint, ...], now: tuple[SweepPoint, ...]) -> tuple[SweepPoint, ...]:
    """The points a resumed run folder holds: the earlier sessions' first, then the new ones."""
    folders = {p.folder for p in earlier}
    return earlier + tuple(p for p in now if p.folder not in folders)
