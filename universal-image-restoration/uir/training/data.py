"""Training and validation images on disk: the task folders, the demo set built on demand,
and pairs read (checked: 8-bit, LQ and GT of one size) one at a time or all into memory.
`uir.training.stream` turns them into the training batches."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from uir.data.paired import DataError, ImagePair, pair_folders, read_image_uint8

DEMO_DATA_COMMAND = "python scripts/make_demo_data.py --out {root}"


@dataclass(frozen=True)
class PairSet:
    """Equally sized uint8 pairs `[N, 3, H, W]` with their task and file names."""

    lq: Tensor
    gt: Tensor
    tasks: tuple[str, ...]
    names: tuple[str, ...]


def task_dir(root: str | Path, split: str, task: str) -> Path:
    return Path(root) / split / task


def ensure_demo_data(root: str | Path, split: str, tasks: tuple[str, ...], make_demo: dict | None) -> str | None:
    """Build the demo data set at `root` if it is absent and `make_demo` (make_demo_dataset
    arguments) is given. Returns a line for the log, or None when the data was there."""
    missing = [t for t in tasks if not task_dir(root, split, t).is_dir()]
    if not missing:
        return None
    root = Path(root)
    command = DEMO_DATA_COMMAND.format(root=root)
    if make_demo is None:
        raise DataError(
            f"datasets: {root}/{split} has no folder for {missing}; build the demo set with `{command}` "
            f"or set datasets.train.make_demo to build it automatically"
        )
    if root.exists() and any(root.iterdir()):
        raise DataError(
            f"datasets: {root} exists but has no {split}/<task> folder for {missing}; rebuild it with "
            f"`{command} --overwrite` or point datasets.train.dataroot at another folder"
        )
    from uir.data.demo import DEMO_TASKS, make_demo_dataset

    unknown = [t for t in tasks if t not in DEMO_TASKS]
    if unknown:
        raise DataError(f"datasets: cannot build {unknown} with make_demo (demo tasks: {', '.join(DEMO_TASKS)})")
    make_demo_dataset(root, tasks=tasks, **make_demo)
    return f"built the demo data set in {root} with make_demo_dataset({make_demo})"


def demo_manifest_mismatch(root: str | Path, make_demo: dict | None) -> str | None:
    """A warning when `root/manifest.json` was written with other make_demo arguments than asked."""
    path = Path(root) / "manifest.json"
    if make_demo is None or not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    counts = {split: len(next(iter(images.values()), [])) for split, images in manifest.get("images", {}).items()}
    found = {
        "seed": manifest.get("seed"),
        "test_size": manifest.get("sizes", {}).get("test"),
        "train_size": manifest.get("sizes", {}).get("train"),
        "n_test_per_task": counts.get("test"),
        "n_train_per_task": counts.get("train"),
        "train_dark_fraction": manifest.get("train_dark_fraction", 0.0),
    }
    differ = {k: (found[k], v) for k, v in make_demo.items() if k in found and found[k] != v}
    if not differ:
        return None
    listing = ", ".join(f"{k}: {a} in the folder, {b} asked" for k, (a, b) in differ.items())
    return f"{root} was built with other make_demo arguments ({listing}); training on what is there"


def read_pair(pair: ImagePair, option: str) -> tuple[np.ndarray, np.ndarray]:
    """An LQ/GT pair as RGB uint8 `[H, W, 3]` arrays of one size; errors name the files."""
    lq, gt = read_image_uint8(pair.lq), read_image_uint8(pair.gt)
    if lq.dtype != np.uint8 or gt.dtype != np.uint8:
        raise DataError(f"{option}: {pair.lq} / {pair.gt}: training reads 8-bit images only")
    if lq.shape != gt.shape:
        raise DataError(f"{option}: {pair.lq} is {lq.shape[:2]} but {pair.gt} is {gt.shape[:2]}; "
                        f"LQ and GT must have the same size")
    return lq, gt


def task_pairs(root: str | Path, split: str, task: str, max_images: int | None = None,
               option: str = "datasets") -> list[ImagePair]:
    """The LQ/GT pairs of ROOT/split/task (ROOT/task when split is ""), in sorted order."""
    folder = task_dir(root, split, task)
    return pair_folders(folder / "LQ", folder / "GT", lq_option=f"{option} ({folder}/LQ)",
                        gt_option=f"{option} ({folder}/GT)", max_images=max_images)


def load_pairs(root: str | Path, split: str, tasks: tuple[str, ...], max_per_task: int | None = None,
               option: str = "datasets") -> list[PairSet]:
    """Every LQ/GT pair of ROOT/split/<task> for the tasks (ROOT/<task> when split is ""), grouped
    by image size."""
    groups: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, str, str]]] = {}
    for task in tasks:
        for pair in task_pairs(root, split, task, max_per_task, option):
            lq, gt = read_pair(pair, option)
            groups.setdefault(lq.shape[:2], []).append((lq, gt, task, pair.name))
    return [
        PairSet(
            lq=torch.from_numpy(np.stack([g[0] for g in items])).permute(0, 3, 1, 2).contiguous(),
            gt=torch.from_numpy(np.stack([g[1] for g in items])).permute(0, 3, 1, 2).contiguous(),
            tasks=tuple(g[2] for g in items),
            names=tuple(g[3] for g in items),
        )
        for items in groups.values()
    ]
