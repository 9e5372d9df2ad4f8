"""The `trajectory:` block of test.py: which images keep every intermediate state of every sweep
point (written by `uir.evaluation.trajectory`, drawn by `scripts/paper_trajectory.py`).

    trajectory:
      images: [GOPR0384_11_00_000001, 12]   # names without extension, positions, or `all`
      predictions: true                      # also keep the network's output at each step
      only: false                            # true: restore only these images

A name is an image's name in the results (its file name without extension, as in
per_image.csv); a YAML integer is a position in the task's sorted listing (0 the first), as the
reference's scripts pick `glob(...)[12]` (quote a name made of digits: `'12'`). Which images
match is checked against the test sets when the run starts (`uir.evaluation.trajectory`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uir.common.checks import boolean, unique
from uir.common.declared import Block, option
from uir.data.paired import IMAGE_EXTENSIONS

ALL = "all"


def image_selection(key: str, value: Any) -> str | tuple[str | int, ...]:
    """`all`, or a list of image names (text) and positions (integers >= 0)."""
    if value == ALL:
        return ALL
    items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"{key}: expected 'all' or a non-empty list of image names (file names without extension) "
                         f"or positions in the sorted listing (0, 1, ...), got {value!r}")
    out: list[str | int] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(f"{key}: {item!r} is neither an image name nor a position (an integer >= 0)")
        if isinstance(item, int) and item < 0:
            raise ValueError(f"{key}: position {item} is negative; positions count from 0 in the sorted listing")
        if isinstance(item, str):
            if not item.strip() or item == ALL:
                raise ValueError(f"{key}: {item!r} is not an image name; write images: all alone, or list names")
            if item.lower().endswith(IMAGE_EXTENSIONS):
                stem = item.rsplit(".", 1)[0]
                raise ValueError(f"{key}: {item!r} has a file extension; give the name without it ({stem!r})")
        out.append(item)
    return unique(key, tuple(out))


@dataclass(frozen=True)
class TrajectoryOptions(Block):
    """Keep each step's state (and the network's prediction) of chosen images, for every sweep point."""

    section = "trajectory"

    images: str | tuple[str | int, ...] = option(check=image_selection,
                                                 missing="list image names (without extension), positions in the "
                                                         "sorted listing, or 'all'")
    predictions: bool = option(True, check=boolean,
                               help="also keep the network's output at each step (the solver's parameterization "
                                    "and as x_0): what the convergence-ratio figure reads")
    only: bool = option(False, check=boolean,
                        help="restore only the chosen images (the tables then cover them alone)")

    def wants_all(self) -> bool:
        return self.images == ALL


__all__ = ["ALL", "TrajectoryOptions", "image_selection"]
