"""`xlsx: true` (test.py --xlsx): the reference's workbook per task, `<run>/<task>.xlsx`, sheet
Sheet1, columns sampler, NFE, PSNR, SSIM, LPIPS, PSNR-Y, SSIM-Y, FID, time; without openpyxl
the run is refused before it starts, naming the package."""
from __future__ import annotations

import importlib.util

import openpyxl
import pytest
import yaml

from helpers import load_script
from uir.evaluation import read_csv
from workspace import make_workspace, raw_options


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("workbook"))


def write_options(ws, name: str) -> str:
    raw = raw_options(ws, "runs", name=name, distortion=["noisy", "hazy"], max_images=1, metrics=["psnr", "ssim"],
                      sweep={"runs": [{"label": "MR Sampler-2", "sampler": "mrsampler", "nfe": [2, 3]},
                                      {"sampler": "posterior", "nfe": 2}]})
    path = ws / f"{name}.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def test_one_workbook_per_task_with_the_references_columns(ws):
    assert load_script("test.py").main([f"-opt={write_options(ws, 'book')}", "--xlsx"]) == 0
    run_dir = ws / "runs" / "book"
    results = {(r["task"], r["label"], r["nfe"]): r for r in read_csv(run_dir / "results.csv")}
    for task in ("noisy", "hazy"):
        sheet = openpyxl.load_workbook(run_dir / f"{task}.xlsx")["Sheet1"]
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0] == ("sampler", "NFE", "PSNR", "SSIM", "LPIPS", "PSNR-Y", "SSIM-Y", "FID", "time")
        assert [r[:2] for r in rows[1:]] == [("MR Sampler-2", 2), ("MR Sampler-2", 3), ("posterior", 2)]
        for label, nfe, psnr, ssim, lpips, psnr_y, ssim_y, fid, seconds in rows[1:]:
            ours = results[task, label, nfe]
            assert (psnr, ssim, seconds) == pytest.approx((ours["psnr"], ours["ssim"], ours["sec_per_image"]), rel=1e-12)
            assert lpips is None and psnr_y is None and fid is None  # not computed in this run
        assert sheet["C2"].number_format == "0.000000000"


def test_without_openpyxl_the_run_is_refused_naming_the_package(ws, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openpyxl" else real(name, *a))
    assert load_script("test.py").main([f"-opt={write_options(ws, 'nobook')}", "--xlsx"]) == 2
    assert "needs the package openpyxl, which is not installed; run `python -m pip install openpyxl`" in \
        capsys.readouterr().err
    assert not (ws / "runs" / "nobook").exists()
