"""The reference's workbook (`xlsx: true`, test.py --xlsx): `<run>/<task>.xlsx` per task, sheet
`Sheet1`, one row per sweep point with the reference's columns

    sampler  NFE  PSNR  SSIM  LPIPS  PSNR-Y  SSIM-Y  FID  time

(`sampler` holds the point's label, the sampler's name without one; `time` is sampling seconds
per image; a metric the run has no value for is an empty cell), for scripts that read the
reference's `<results_root>/<task>.xlsx`. The `input` rows are left out: the reference has none.
Written with openpyxl, which only this output needs.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uir.common.errors import OptionsError
from uir.evaluation.tables import INPUT

SHEET = "Sheet1"
# (the reference's header, our results-table column)
COLUMNS = (("sampler", "label"), ("NFE", "nfe"), ("PSNR", "psnr"), ("SSIM", "ssim"), ("LPIPS", "lpips"),
           ("PSNR-Y", "psnr_y"), ("SSIM-Y", "ssim_y"), ("FID", "fid"), ("time", "sec_per_image"))
NUMBER_FORMAT = "0.000000000"  # the reference's format of its columns C to I


def require_openpyxl() -> None:
    """Raise `OptionsError` saying what to install when openpyxl is missing (checked before a run starts)."""
    if importlib.util.find_spec("openpyxl") is None:
        raise OptionsError("xlsx (--xlsx): writing the reference's .xlsx workbooks needs the package openpyxl, "
                           "which is not installed; run `python -m pip install openpyxl` (it is in "
                           "requirements.txt), or drop xlsx")


def write_workbooks(run_dir: str | Path, table: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """`<task>.xlsx` for every task of the results `table`; returns {"xlsx_<task>": path}."""
    require_openpyxl()
    from openpyxl import Workbook

    paths = {}
    for task in dict.fromkeys(row["task"] for row in table):
        book = Workbook()
        sheet = book.active
        sheet.title = SHEET
        sheet.append([header for header, _ in COLUMNS])
        for row in table:
            if row["task"] != task or row["sampler"] == INPUT:
                continue
            sheet.append([row.get("label") or row["sampler"], *(row.get(key) for _, key in COLUMNS[1:])])
        for cells in sheet.iter_cols(min_col=3, min_row=2):
            for cell in cells:
                cell.number_format = NUMBER_FORMAT
        path = Path(run_dir) / f"{task}.xlsx"
        book.save(path)
        paths[f"xlsx_{task}"] = path
    return paths


__all__ = ["COLUMNS", "SHEET", "require_openpyxl", "write_workbooks"]
