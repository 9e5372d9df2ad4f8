"""Which test sets a run evaluates, and where their images are.

- With `data_root` (``--data-root``): the tasks are `tasks` (``--dataset``) or else
  `distortion`, each read from ``ROOT/<task>/LQ`` and, when it exists, ``ROOT/<task>/GT``.
  A task name must be one of the reference's ten or an existing folder under ROOT. A task
  asked for by name that has no folder is an error; tasks that come from `distortion` (all
  ten in the reference's files) are skipped with a warning when their folder is absent.
- Without it: the `datasets:` blocks, in sorted key order (test1, test2, ...), as the reference.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from uir.common.errors import DataError, DatarootNotFoundError
from uir.data.paired import ImagePair, pair_folders
from uir.options.blocks import REFERENCE_TASKS
from uir.options.schema import DataOptions
from uir.common.checks import closest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskData:
    """One test set: its name (the results' `task` column) and its image pairs."""

    name: str
    pairs: tuple[ImagePair, ...]
    lq_dir: Path
    gt_dir: Path | None

    @property
    def has_gt(self) -> bool:
        return self.gt_dir is not None


def _task_under_root(root: Path, task: str, source: str, max_images: int | None) -> TaskData:
    folder = root / task
    if not folder.is_dir():
        if task not in REFERENCE_TASKS:
            present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            hint = closest(task, [*REFERENCE_TASKS, *present])
            did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
            raise DataError(
                f"{source}: unknown task {task!r}{did_you_mean}; known tasks: {', '.join(REFERENCE_TASKS)}"
                + (f"; folders under {root}: {', '.join(present)}" if present else "")
            )
        raise DatarootNotFoundError(
            f"{source}: task {task!r} has no folder {folder} (data_root / --data-root is {root}; "
            f"each task needs {folder}/LQ and, for metrics, {folder}/GT)"
        )
    gt_dir = folder / "GT"
    gt = gt_dir if gt_dir.is_dir() else None
    pairs = pair_folders(
        folder / "LQ", gt, lq_option=f"data_root ({task}/LQ)", gt_option=f"data_root ({task}/GT)", max_images=max_images
    )
    return TaskData(task, tuple(pairs), folder / "LQ", gt)


def resolve_tasks(options: DataOptions) -> list[TaskData]:
    """The test sets of a run, with their image lists (checked: folders exist, counts match)."""
    if options.data_root is not None:
        root = Path(options.data_root)
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise DatarootNotFoundError(f"data_root (--data-root): {root} {what}; it must hold one <task>/{{LQ,GT}} "
                                        f"folder per task")
        if options.tasks:
            return [_task_under_root(root, name, "tasks (--dataset)", options.max_images) for name in options.tasks]
        present = [name for name in options.distortion if (root / name).is_dir()]
        missing = [name for name in options.distortion if name not in present]
        if not present:
            raise DatarootNotFoundError(
                f"data_root (--data-root): {root} has none of the task folders listed in distortion "
                f"({', '.join(options.distortion)}); name the tasks with --dataset"
            )
        if missing:
            logger.warning("data_root %s has no folder for %s (from distortion): skipped", root, ", ".join(missing))
        return [_task_under_root(root, name, "distortion", options.max_images) for name in present]
    tasks = []
    for d in options.datasets:
        where = f"datasets.{d.key}"
        pairs = pair_folders(
            d.dataroot_LQ, d.dataroot_GT, lq_option=f"{where}.dataroot_LQ", gt_option=f"{where}.dataroot_GT",
            max_images=options.max_images,
        )
        tasks.append(TaskData(d.name, tuple(pairs), Path(d.dataroot_LQ), Path(d.dataroot_GT) if d.dataroot_GT else None))
    return tasks
