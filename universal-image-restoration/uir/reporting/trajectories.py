"""The trajectories a test.py run kept (`trajectory:`; `uir.evaluation.trajectory`), grouped by
image, with each one's final metrics from per_image.csv; and their projection on the first two
principal components of (GT + every state), computed from the Gram matrix of the states so that
no [states x pixels] matrix is ever held in memory (the states are read memory-mapped, a block
of pixels at a time).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from uir.data.paired import read_image, to_tensor
from uir.evaluation.tables import read_csv
from uir.evaluation.trajectory import FORMAT, TRAJECTORY_DIR
from uir.reporting.runs import ReportError

PER_IMAGE_FILE = "per_image.csv"
PIXEL_BLOCK = 1 << 18  # pixels (per state) per block of the Gram matrix


@dataclass(frozen=True)
class Trajectory:
    """One kept trajectory: a sweep point's steps for one image, with its final metrics."""

    path: Path
    task: str
    image: str
    label: str
    nfe: int
    metrics: Mapping[str, float | None]  # from per_image.csv (psnr, ssim, lpips, ...)

    @property
    def name(self) -> str:
        return f"{self.label} ({self.nfe})"

    def load(self) -> dict[str, Any]:
        return load_record(self.path)


def load_record(path: Path) -> dict[str, Any]:
    """A trajectory file, its tensors memory-mapped (read from disk as they are used)."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error for the user
        raise ReportError(f"{path}: cannot read this trajectory file ({exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ReportError(f"{path}: not a trajectory file written by test.py (format {FORMAT})")
    return record


def _metrics(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, int, str], dict[str, Any]]:
    keys = ("task", "sampler", "label", "nfe", "image", "output", "seconds", "model_calls", "seed", "batch_size")
    return {(r["task"], r.get("label") or r["sampler"], int(r["nfe"]), r["image"]):
            {k: v for k, v in r.items() if k not in keys} for r in rows if r.get("sampler") != "input"}


def read_trajectories(run_dir: str | os.PathLike) -> dict[tuple[str, str], list[Trajectory]]:
    """{(task, image): its trajectories in the run's sweep order}; `ReportError` if there are none."""
    run = Path(run_dir)
    root = run / TRAJECTORY_DIR
    files = sorted(root.rglob("*.pt")) if root.is_dir() else []
    if not files:
        raise ReportError(f"{run}: holds no {TRAJECTORY_DIR}/*.pt; run test.py with a trajectory: block "
                          f"(e.g. options/paper_trajectory.yml) first")
    rows = read_csv(run / PER_IMAGE_FILE) if (run / PER_IMAGE_FILE).is_file() else []
    order = {(r["task"], r.get("label") or r["sampler"], int(r["nfe"])): i for i, r in enumerate(rows)}
    metrics = _metrics(rows)
    found: dict[tuple[str, str], list[Trajectory]] = {}
    for path in files:
        record = load_record(path)
        key = (record["task"], record["label"], int(record["nfe"]), record["image"])
        found.setdefault((key[0], key[3]), []).append(
            Trajectory(path, key[0], key[3], key[1], key[2], metrics.get(key, {})))
    for group in found.values():
        group.sort(key=lambda t: (order.get((t.task, t.label, t.nfe), len(order)), t.label, -t.nfe))
    return found


def read_gt(record: Mapping[str, Any]) -> Tensor | None:
    """The GT image of a trajectory as [3, H, W] in [0, 1] (None: the test set had no GT)."""
    path = record.get("gt_path")
    if path is None:
        return None
    if not Path(path).is_file():
        raise ReportError(f"GT image {path} (recorded in the trajectory of {record['task']}/{record['image']}) is "
                          f"not there; put the test set back where the run read it")
    return to_tensor(read_image(path))


def _flat(array: Tensor) -> Tensor:
    return array.reshape(array.shape[0], -1)


def pca_2d(arrays: Sequence[Tensor], block: int = PIXEL_BLOCK) -> tuple[list[np.ndarray], np.ndarray]:
    """The first two principal components of every row of `arrays` together (each [n_i, ...]):
    the coordinates of each array's rows ([n_i, 2]) and the share of the variance each component
    explains. Exact PCA (centred, as scikit-learn's) from the [n x n] Gram matrix, accumulated in
    float64 over blocks of pixels; each component's sign puts its largest coordinate positive."""
    flats = [_flat(a) for a in arrays]
    counts = [f.shape[0] for f in flats]
    n, width = sum(counts), flats[0].shape[1]
    gram = torch.zeros(n, n, dtype=torch.float64)
    for start in range(0, width, block):
        part = torch.cat([f[:, start:start + block].to(torch.float64) for f in flats])
        gram += part @ part.T
    mean_rows = gram.mean(dim=1, keepdim=True)
    centred = gram - mean_rows - mean_rows.T + gram.mean()
    values, vectors = torch.linalg.eigh(centred)
    values, vectors = values.flip(0).clamp(min=0), vectors.flip(1)
    coords = vectors[:, :2] * values[:2].sqrt()
    signs = torch.sign(coords.gather(0, coords.abs().argmax(dim=0, keepdim=True)))
    coords = (coords * torch.where(signs == 0, torch.ones_like(signs), signs)).numpy()
    total = float(values.sum())
    ratio = (values[:2] / total).numpy() if total > 0 else np.zeros(2)
    return list(np.split(coords, np.cumsum(counts)[:-1])), ratio


__all__ = ["Trajectory", "load_record", "pca_2d", "read_gt", "read_trajectories"]
