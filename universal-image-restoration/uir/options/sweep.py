"""What a run evaluates: the `sweep:` block, and its points.

`sweep: {samplers: [...], nfe: [...]}` is every sampler at every NFE; `sweep.runs` lists
`SweepRun`s (a sampler, its NFEs, a label, `set:` sampler keys of its own). Either way the run
evaluates a sequence of `SweepPoint`s: one sampler at one NFE, with its label and overrides.
A point's rows in the per-image record are those of its `PointKey` (task, label, NFE).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from uir.common.checks import check_int, choice, label_text, names, optional, unique
from uir.common.declared import Block, option
from uir.samplers.registry import SAMPLERS

from uir.options.blocks import mapping


# The label of a task's `input` row (the LQ images scored against GT): no sweep point may take it.
INPUT_LABEL = "input"


def point_label(key: str, value: Any) -> str | None:
    """A point's label: text that fits a folder name (`label_text`), not the input row's."""
    label = label_text(key, value)
    if label == INPUT_LABEL:
        raise ValueError(f"{key}: {INPUT_LABEL!r} names the LQ images' own row in the tables; choose another label")
    return label


class PointKey(NamedTuple):
    """What identifies a sweep point's rows: the task, the label (the sampler's name without one)
    and the NFE."""

    task: str
    label: str
    nfe: int

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> "PointKey":
        return cls(row["task"], row.get("label") or row["sampler"], int(row["nfe"]))


@dataclass(frozen=True)
class SweepPoint:
    """One point of the sweep: a sampler at one NFE, with its label and `sampler:` overrides."""

    sampler: str
    nfe: int
    label: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()  # (sampler key, value) pairs, sorted

    @property
    def name(self) -> str:
        """The label, or the sampler's name: how tables and logs call this point."""
        return self.label or self.sampler

    @property
    def folder(self) -> str:
        """`<label or sampler>_nfe<N>`, the label's characters outside [A-Za-z0-9._-] as `_`."""
        return f"{re.sub(r'[^A-Za-z0-9._-]', '_', self.name)}_nfe{self.nfe}"

    def key(self, task: str) -> PointKey:
        return PointKey(task, self.name, self.nfe)


def nfe_list(key: str, value: Any) -> tuple[int, ...]:
    """One NFE or a list of distinct NFEs."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{key}: the list is empty")
    return unique(key, tuple(check_int(key, n, minimum=1) for n in items))


def _overrides(key: str, value: Any) -> dict[str, Any]:
    """A `set:` block of sampler keys (checked against the run's sampler in `SweepRun`)."""
    given = mapping(key, value)
    if "num_sample_steps" in given:
        raise ValueError(f"{key}.num_sample_steps: set the steps with the run's nfe instead")
    return given


@dataclass(frozen=True)
class SweepRun(Block):
    """One entry of `sweep.runs`: `{sampler: NAME, nfe: N or [N, ...], label: TEXT, set: {sampler keys}}`."""

    sampler: str = option(check=choice(SAMPLERS.names), missing="the sampler of this run")
    nfe: tuple[int, ...] = option(check=nfe_list, missing="the NFE (or a list of NFEs) of this run")
    label: str | None = option(None, check=point_label,
                               help="its name in tables, folders and plots (default: the sampler)")
    set: dict[str, Any] = option(factory=dict, check=_overrides, help="sampler keys that differ for this run")

    def points(self) -> tuple[SweepPoint, ...]:
        return tuple(SweepPoint(self.sampler, n, self.label, tuple(sorted(self.set.items()))) for n in self.nfe)


@dataclass(frozen=True)
class SweepOptions(Block):
    """`sweep:` what to evaluate: `samplers` x `nfe` (default: `sde.algorithm` x
    `sampler.num_sample_steps`), or `runs`, a list of samplers each with its own NFEs, label and
    `sampler:` overrides (the command line's --sampler / --nfe replace parts of `runs`)."""

    section = "sweep"

    samplers: tuple[str, ...] | None = option(None, check=optional(names(item=choice(SAMPLERS.names))),
                                              flag="--sampler", nargs="+", metavar="NAME",
                                              help="samplers to evaluate (names in uir.samplers.SAMPLERS)")
    nfe: tuple[int, ...] | None = option(None, check=optional(nfe_list), flag="--nfe", nargs="+", metavar="N",
                                         help="numbers of sampling steps (sampler.num_sample_steps)")
    runs: tuple[SweepRun, ...] | None = option(None, items=SweepRun)

    def __post_init__(self) -> None:
        if self.runs is None:
            return
        if self.samplers is not None or self.nfe is not None:
            raise ValueError("sweep.runs: give either runs or samplers/nfe, not both")
        if not self.runs:
            raise ValueError("sweep.runs: expected a non-empty list of {sampler: NAME, nfe: N}, got []")
        seen: dict[str, SweepPoint] = {}
        for point in (p for r in self.runs for p in r.points()):
            other = seen.setdefault(point.folder, point)
            if other is point:
                continue
            if other.name == point.name:
                raise ValueError(f"sweep.runs: the point {point.name!r} at nfe {point.nfe} is listed twice")
            raise ValueError(f"sweep.runs: the labels {other.name!r} and {point.name!r} both make the folder "
                             f"{point.folder} (characters outside A-Za-z0-9._- become _); rename one")

    def points(self, algorithm: str, num_sample_steps: int) -> tuple[SweepPoint, ...]:
        """Every point, in order; without a sweep, `algorithm` at `num_sample_steps`."""
        if self.runs is not None:
            return tuple(p for r in self.runs for p in r.points())
        return tuple(SweepPoint(s, n) for s in self.samplers or (algorithm,) for n in self.nfe or (num_sample_steps,))


def as_runs(points: tuple[SweepPoint, ...]) -> dict[str, Any]:
    """A `sweep:` block listing `points` one by one (what a resumed folder's options.yml says)."""
    runs = []
    for p in points:
        run: dict[str, Any] = {"sampler": p.sampler, "nfe": p.nfe}
        if p.label:
            run["label"] = p.label
        if p.overrides:
            run["set"] = dict(p.overrides)
        runs.append(run)
    return {"samplers": None, "nfe": None, "runs": runs}
