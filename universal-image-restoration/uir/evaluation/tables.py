"""The per-image CSV and the results table (CSV, Markdown, JSON) of a run.

The table has one row per (task, sampler, nfe): the sampler's settings, the mean PSNR,
SSIM, PSNR-Y, SSIM-Y and LPIPS over the images, the mean sampling time per image and the
image count. It is always computed from the per-image rows, so a resumed run's table
covers the images of every session.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from uir.samplers.config import SamplerConfig

METRICS = ("psnr", "ssim", "psnr_y", "ssim_y", "lpips")
PER_IMAGE_COLUMNS = (
    "task", "sampler", "label", "nfe", "image", "output", *METRICS, "seconds", "model_calls", "seed", "batch_size", "error",
)
SETTINGS_COLUMNS = ("solver", "order", "parameterization", "fit_target", "schedule", "final_steps", "corrector")
TABLE_COLUMNS = (
    "task", "sampler", "label", "nfe", *SETTINGS_COLUMNS, *METRICS, "fid", "fid_images", "sec_per_image",
    "model_calls", "images", "failed",
)
_INT_COLUMNS = {"nfe", "order", "model_calls", "seed", "batch_size", "images", "failed", "fid_images"}
_FLOAT_COLUMNS = {*METRICS, "fid", "seconds", "sec_per_image"}
_MARKDOWN_FORMATS = {c: "{:.4f}" for c in ("psnr", "ssim", "psnr_y", "ssim_y", "lpips", "fid", "sec_per_image")}
# The `input` row of a task: the LQ images scored against GT (is a restoration better than its input?).
INPUT = "input"


def sampler_settings(sampler: str, cfg: SamplerConfig) -> dict[str, Any]:
    """The settings columns of a sampler: which solver, its order, what the network's output is
    converted to, what it predicts, the time grid, and (MR Sampler) how the last steps' orders are
    chosen and the corrector."""
    if sampler == "mrsampler":
        final = ", ".join(([] if not cfg.lower_order_final else ["lower order"])
                          + ([] if cfg.final_order is None else [f"last at order {cfg.final_order}"])) or "reference"
        return {"solver": cfg.solver_type, "order": cfg.order, "parameterization": cfg.parameterization,
                "fit_target": cfg.target_for(sampler), "schedule": cfg.time_schedule, "final_steps": final,
                "corrector": cfg.corrector}
    if sampler == "heun":
        return {"solver": cfg.solver_type, "order": 2, "parameterization": "noise", "fit_target": cfg.target_for(sampler),
                "schedule": "uniform"}
    # sde (Euler-Maruyama) and posterior: first-order steps of the reverse SDE on int(linspace(1, T, N))
    return {"solver": "sde", "order": 1, "parameterization": "noise", "fit_target": cfg.target_for(sampler),
            "schedule": "uniform"}


def _format_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


def _parse_cell(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in _INT_COLUMNS:
        return int(text)
    if column in _FLOAT_COLUMNS:
        return float(text)
    return text


def parse_row(row: Mapping[str, str | None]) -> dict[str, Any]:
    """A CSV row read back: numbers parsed exactly; a row with too few cells is an error."""
    if None in row.values() or None in row:
        raise ValueError("the row has a different number of cells than the header")
    return {k: _parse_cell(k, v) for k, v in row.items()}


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a per-image or results CSV written here, with numbers parsed back exactly."""
    with open(path, newline="", encoding="utf-8") as f:
        return [parse_row(row) for row in csv.DictReader(f)]


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_format_cell(c, row.get(c)) for c in columns])


def append_csv_row(file, row: Mapping[str, Any], columns: Sequence[str]) -> None:
    csv.writer(file).writerow([_format_cell(c, row.get(c)) for c in columns])


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def point_key(row: Mapping[str, Any]) -> tuple[str, str, int]:
    """(task, label, nfe): what identifies a sweep point's rows (the label defaults to the sampler)."""
    return row["task"], row.get("label") or row["sampler"], int(row["nfe"])


def summarize(rows: Iterable[Mapping[str, Any]], points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The results table: for each point (task, sampler, label, nfe and its settings columns), the
    means of its per-image rows; `images` counts the restored images, `failed` those whose output
    was not finite (they have no metric)."""
    by_point: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    failed: dict[tuple[str, str, int], int] = {}
    for row in rows:
        if row.get("error"):
            failed[point_key(row)] = failed.get(point_key(row), 0) + 1
        else:
            by_point.setdefault(point_key(row), []).append(row)
    table = []
    for point in points:
        group = by_point.get(point_key(point), [])
        out: dict[str, Any] = {c: point.get(c) for c in TABLE_COLUMNS}  # fid, fid_images: filled in by the run
        for metric in METRICS:
            out[metric] = _mean([r[metric] for r in group if r.get(metric) is not None])
        out["sec_per_image"] = _mean([r["seconds"] for r in group if r.get("seconds") is not None])
        calls = {r["model_calls"] for r in group if r.get("model_calls") is not None}
        out["model_calls"] = calls.pop() if len(calls) == 1 else None
        out["images"] = len(group)
        out["failed"] = failed.get(point_key(point), 0)
        table.append(out)
    return table


def markdown_cell(value: Any, fmt: str = "{}") -> str:
    """A table cell: `-` for None, yes / NO for a bool, inf / nan as such, else `fmt`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return fmt.format(value)


def to_markdown(table: Sequence[Mapping[str, Any]], columns: Sequence[str] = TABLE_COLUMNS, *,
                titles: Mapping[str, str] | None = None, formats: Mapping[str, str] | None = None) -> str:
    """A Markdown table of `columns` (keys of each row), headed by `titles` (default: the keys)
    and formatted by `formats` (a `str.format` pattern per key; default: the results table's)."""
    titles = titles or {}
    formats = _MARKDOWN_FORMATS if formats is None else formats
    lines = ["| " + " | ".join(titles.get(c, c) for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(markdown_cell(row.get(c), formats.get(c, "{}")) for c in columns) + " |" for row in table]
    return "\n".join(lines) + "\n"


def write_tables(run_dir: str | os.PathLike, table: Sequence[Mapping[str, Any]], *, meta: Mapping[str, Any]) -> dict[str, Path]:
    """`results.csv`, `results.md` and `results.json` (rows plus `meta`) in `run_dir`."""
    run_dir = Path(run_dir)
    paths = {"csv": run_dir / "results.csv", "md": run_dir / "results.md", "json": run_dir / "results.json"}
    write_csv(paths["csv"], table, TABLE_COLUMNS)
    paths["md"].write_text(to_markdown(table), encoding="utf-8")
    payload = {"meta": dict(meta), "columns": list(TABLE_COLUMNS), "rows": [dict(r) for r in table]}
    paths["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return paths
