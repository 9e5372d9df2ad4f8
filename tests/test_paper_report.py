"""scripts/paper_report.py: finished runs -> Figure 2 PNG per task, Markdown and CSV tables with
the paper's published values beside ours; bad run folders get a one-line error and exit 2."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import REPO, load_script
from PIL import Image

from uir.reporting import ReportError, load_paper_values
from uir.reporting.paper import PAPER_VALUES_FILE

DEMO = REPO / "options" / "demo.yml"


@pytest.fixture(scope="module")
def report_script():
    return load_script("scripts/paper_report.py")


def row(task, sampler, nfe, label=None, **metrics):
    out = {"task": task, "sampler": sampler, "nfe": nfe, "psnr": 20.0 + nfe / 10, "ssim": 0.5, "psnr_y": 21.0,
           "ssim_y": 0.6, "lpips": 0.3, "sec_per_image": 0.01 * nfe, "model_calls": nfe, "images": 3}
    if label is not None:
        out["label"] = label
    out.update(metrics)
    return out


def write_run(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    payload = {"meta": {"name": folder.name}, "columns": sorted({k for r in rows for k in r}), "rows": rows}
    (folder / "results.json").write_text(json.dumps(payload), encoding="utf-8")
    return folder


@pytest.fixture
def two_runs(tmp_path):
    """A Figure 2 sweep split over two runs: today's schema (no label: the sampler names it) and
    the coming one (label, fid, fid_images, an input row)."""
    first = write_run(tmp_path / "results" / "posterior_euler", [
        *(row("low-light", "posterior", n) for n in (5, 10, 100)),
        *(row("low-light", "sde", n) for n in (5, 10)),
    ])
    second = write_run(tmp_path / "results" / "mrs", [
        row("low-light", "input", 0, psnr=9.5, fid=300.0, fid_images=15),
        *(row("low-light", "mrsampler", n, label="MR Sampler-2", fid=40.0 - n / 10, fid_images=15) for n in (5, 10)),
        *(row("motion-blurry", "mrsampler", n, label="MR Sampler-1", fid=None) for n in (5, 20, 7)),
        row("motion-blurry", "mrsampler", 10, label="MR Sampler (my variant)"),
    ])
    return first, second


def read_report_csv(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["task"], r["label"], r["nfe"]): r for r in csv.DictReader(f)}


def test_report_of_two_runs_holds_every_point_with_the_paper_beside_ours(two_runs, tmp_path, report_script, capsys):
    out = tmp_path / "report"
    assert report_script.main([*map(str, two_runs), "--out", str(out)]) == 0
    for task in ("low-light", "motion-blurry"):
        png = out / f"figure2_{task}.png"
        assert png.stat().st_size > 10_000
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 2 * image.height

    table = read_report_csv(out / "paper_tables.csv")
    expected_points = {("low-light", "posterior", n) for n in ("5", "10", "100")} | \
        {("low-light", "sde", "5"), ("low-light", "sde", "10"), ("low-light", "input", ""),
         ("low-light", "MR Sampler-2", "5"), ("low-light", "MR Sampler-2", "10"),
         ("motion-blurry", "MR Sampler (my variant)", "10")} | \
        {("motion-blurry", "MR Sampler-1", n) for n in ("5", "7", "20")}
    assert set(table) == expected_points
    # The paper's Figure 2 values in the right cells (sde is the paper's Euler); none where it has none.
    assert float(table["low-light", "posterior", "5"]["paper_fid"]) == 452.97
    assert float(table["low-light", "posterior", "100"]["paper_lpips"]) == 0.080
    assert float(table["low-light", "sde", "10"]["paper_fid"]) == 424.17
    assert float(table["low-light", "MR Sampler-2", "10"]["paper_fid"]) == 36.53
    assert float(table["motion-blurry", "MR Sampler-1", "20"]["paper_lpips"]) == 0.129
    assert table["motion-blurry", "MR Sampler-1", "7"]["paper_fid"] == ""
    assert table["low-light", "posterior", "5"]["paper_psnr"] == ""  # Figure 2 has no PSNR
    assert table["low-light", "input", ""]["paper_fid"] == ""
    assert table["motion-blurry", "MR Sampler (my variant)", "10"]["paper_fid"] == ""
    # Ours beside it, with timing and the FID's image count.
    ours = table["low-light", "MR Sampler-2", "10"]
    assert (float(ours["fid"]), ours["fid_images"], float(ours["sec_per_image"])) == (39.0, "15", 0.1)
    assert "Figure 2 of arXiv 2502.07856" in ours["paper_source"]

    markdown = (out / "paper_tables.md").read_text(encoding="utf-8")
    assert "| MR Sampler-2 | 10 | 39.00 | 36.53 | 0.3000 | 0.0840 | 21.00 | - | 0.5000 | - | 0.100 | 3 | 15 |" in markdown
    assert "| input | - | 300.00 | - |" in markdown
    assert markdown.index("## low-light") < markdown.index("## motion-blurry")
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "figure2_low-light.png"), str(out / "figure2_motion-blurry.png"),
                       str(out / "paper_tables.md"), str(out / "paper_tables.csv"),
                       str(out / "ten_tasks.md"), str(out / "ten_tasks.csv")]  # low-light has posterior-100 and MRS-2


def test_report_never_overwrites_unasked(two_runs, tmp_path, report_script, capsys):
    assert report_script.main([str(two_runs[0])]) == 0
    default = two_runs[0].parent / "paper_report"
    before = (default / "paper_tables.csv").read_bytes()
    assert report_script.main([str(two_runs[0])]) == 0  # a second report goes beside the first
    assert (two_runs[0].parent / "paper_report_2" / "paper_tables.csv").is_file()
    assert (default / "paper_tables.csv").read_bytes() == before
    capsys.readouterr()
    assert report_script.main([str(two_runs[1]), "--out", str(default)]) == 2
    assert "exists; choose another --out or pass --overwrite" in capsys.readouterr().err
    assert report_script.main([str(two_runs[1]), "--out", str(default), "--overwrite", "--no-paper"]) == 0
    table = read_report_csv(default / "paper_tables.csv")
    assert table["low-light", "MR Sampler-2", "10"]["paper_fid"] == ""  # --no-paper


@pytest.mark.parametrize("problem, message", [
    ("missing", "no such run folder"),
    ("empty", "not a finished run folder (no results.json"),
    ("garbage", "cannot read it as JSON"),
    ("no_rows", "expected an object with a list 'rows'"),
    ("no_task", "rows[0]: missing task"),
    ("text_metric", "rows[0].psnr: expected a number or null, got 'high'"),
])
def test_bad_run_folder_is_one_line_and_exit_2(tmp_path, report_script, capsys, problem, message):
    folder = tmp_path / problem
    if problem != "missing":
        folder.mkdir()
    contents = {"garbage": "{not json", "no_rows": json.dumps({"meta": {}}),
                "no_task": json.dumps({"rows": [{"sampler": "sde", "nfe": 5}]}),
                "text_metric": json.dumps({"rows": [row("noisy", "sde", 5, psnr="high")]})}
    if problem in contents:
        (folder / "results.json").write_text(contents[problem], encoding="utf-8")
    assert report_script.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("paper_report.py: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "paper_report").exists()


def test_paper_values_file_is_checked(tmp_path):
    paper = load_paper_values()
    assert len(paper.values) == 208 and paper.get("Motion-Blurry", "Euler", "fid", 50).value == 61.21
    assert paper.get("rain100h", "MR Sampler (noise)", "psnr", 10).value == 6.623
    assert paper.get("celeba-hq", "mr sampler sde", "ssim", 5).value == 0.8930
    bad = tmp_path / "values.yml"
    text = PAPER_VALUES_FILE.read_text(encoding="utf-8").replace("values: [41.81, 41.10, 35.28, 34.45, 32.91]",
                                                                 "values: [41.81, 41.10]")
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ReportError, match=r"values.yml: series\[2\]: 5 NFEs but 2 values"):
        load_paper_values(bad)


@pytest.mark.slow
def test_report_of_a_real_demo_run(tmp_path, monkeypatch, report_script):
    """test.py on the demo (two tasks, one image, NFE 2), then the report of that run folder."""
    monkeypatch.chdir(REPO)
    code = load_script("test.py").main(["-opt", str(DEMO), "--dataset", "low-light", "noisy", "--max-images", "1",
                                        "--nfe", "2", "--results-root", str(tmp_path / "runs"), "--no-lpips",
                                        "--device", "cpu"])
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["rows"]
    assert report_script.main([str(run_dir), "--out", str(tmp_path / "report")]) == 0
    table = read_report_csv(tmp_path / "report" / "paper_tables.csv")
    points = {(r["task"], r.get("label") or r["sampler"], "" if r["sampler"] == "input" else str(r["nfe"]))
              for r in results}
    assert set(table) == points
    assert {("low-light", "mrsampler", "2"), ("noisy", "posterior", "2")} <= points
    for task in ("low-light", "noisy"):
        assert (tmp_path / "report" / f"figure2_{task}.png").stat().st_size > 10_000
    assert float(table["low-light", "posterior", "2"]["psnr"]) == pytest.approx(
        next(r["psnr"] for r in results if (r["task"], r["sampler"]) == ("low-light", "posterior")))
