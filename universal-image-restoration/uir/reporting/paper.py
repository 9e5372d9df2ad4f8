"""The paper's published numbers (`paper_values.yml`) and how run rows are matched to them."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from uir.reporting.runs import ReportError

PAPER_VALUES_FILE = Path(__file__).with_name("paper_values.yml")
PAPER_METRICS = ("fid", "lpips", "psnr", "ssim")


def match_key(name: str) -> str:
    """Names compare ignoring case, spaces and punctuation: "MR Sampler (noise)" == "mr-sampler noise"."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass(frozen=True)
class PaperValue:
    value: float
    source: str  # e.g. "Figure 2 of arXiv 2502.07856: ..."


@dataclass(frozen=True)
class PaperValues:
    """Published values by (task, label, metric, nfe), matched with `match_key`."""

    values: dict[tuple[str, str, str, int], PaperValue]
    label_aliases: dict[str, str]
    sources: dict[str, str]

    def paper_label(self, label: str) -> str:
        """The paper's name for a run label (e.g. sampler "sde" -> "Euler"); the label itself otherwise."""
        return self.label_aliases.get(match_key(label), label)

    def get(self, task: str, label: str, metric: str, nfe: int) -> PaperValue | None:
        key = (match_key(task), match_key(self.paper_label(label)), metric, int(nfe))
        return self.values.get(key)

    def series(self, task: str, label: str, metric: str) -> list[tuple[int, float]]:
        """(nfe, value) of one published curve, by NFE."""
        task_key, label_key = match_key(task), match_key(self.paper_label(label))
        return sorted((n, v.value) for (t, l, m, n), v in self.values.items()
                      if (t, l, m) == (task_key, label_key, metric))


NO_PAPER_VALUES = PaperValues({}, {}, {})  # a report without the paper's numbers


def _fail(path: Path, where: str, problem: str) -> ReportError:
    return ReportError(f"{path}: {where}: {problem}")


def load_paper_values(path: str | os.PathLike = PAPER_VALUES_FILE) -> PaperValues:
    """Read the data file; a malformed one raises `ReportError` naming the file and the entry."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReportError(f"{path}: cannot read the paper's values: {exc}") from exc
    if not isinstance(data, dict):
        raise _fail(path, "top level", "expected sources, label_aliases and series")
    sources = {str(k): str(v) for k, v in (data.get("sources") or {}).items()}
    aliases = {match_key(k): str(v) for k, v in (data.get("label_aliases") or {}).items()}
    values: dict[tuple[str, str, str, int], PaperValue] = {}
    for i, entry in enumerate(data.get("series") or []):
        where = f"series[{i}]"
        if not isinstance(entry, dict):
            raise _fail(path, where, "expected a mapping")
        missing = [k for k in ("source", "task", "metric", "label", "nfe", "values") if k not in entry]
        if missing:
            raise _fail(path, where, f"missing {', '.join(missing)}")
        if entry["source"] not in sources:
            raise _fail(path, where, f"source {entry['source']!r} is not one of {sorted(sources)}")
        if entry["metric"] not in PAPER_METRICS:
            raise _fail(path, where, f"metric {entry['metric']!r} is not one of {list(PAPER_METRICS)}")
        if len(entry["nfe"]) != len(entry["values"]):
            raise _fail(path, where, f"{len(entry['nfe'])} NFEs but {len(entry['values'])} values")
        tasks = entry["task"] if isinstance(entry["task"], list) else [entry["task"]]  # a list: either reading
        for task in tasks:
            for nfe, value in zip(entry["nfe"], entry["values"]):
                key = (match_key(task), match_key(entry["label"]), entry["metric"], int(nfe))
                if key in values:
                    raise _fail(path, where, f"a second value for {task} {entry['label']} {entry['metric']} NFE {nfe}")
                values[key] = PaperValue(float(value), sources[entry["source"]])
    return PaperValues(values, aliases, sources)


__all__ = [
    "NO_PAPER_VALUES", "PAPER_METRICS", "PAPER_VALUES_FILE", "PaperValue", "PaperValues", "load_paper_values",
    "match_key",
]
