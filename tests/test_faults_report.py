"""scripts/paper_report.py never writes one file twice, and says when a run has not finished
(issue #26, items 6 and 13)."""
from __future__ import annotations

import json

import pytest

from helpers import load_script
from test_paper_report import read_report_csv, row, write_run
from uir.reporting.report import figure_names


@pytest.fixture(scope="module")
def report_script():
    return load_script("scripts/paper_report.py")


def test_tasks_whose_figure_names_collide_get_a_figure_each(tmp_path, report_script, capsys):
    run = write_run(tmp_path / "run", [row(task, "mrsampler", n) for task in ("sp ace", "sp_ace", "SP_ACE")
                                       for n in (5, 10)])
    assert report_script.main([str(run), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out.split("\n")
    figures = [tmp_path / "report" / name for name in ("figure2_sp_ace.png", "figure2_sp_ace_2.png",
                                                       "figure2_SP_ACE_3.png")]
    assert printed[:3] == [str(f) for f in figures] and all(f.stat().st_size > 10_000 for f in figures)
    assert {task for task, _, _ in read_report_csv(tmp_path / "report" / "paper_tables.csv")} == \
        {"sp ace", "sp_ace", "SP_ACE"}
    assert figure_names(["a b", "a_b", "a_b_2"]) == {"a b": "figure2_a_b.png", "a_b": "figure2_a_b_2.png",
                                                     "a_b_2": "figure2_a_b_2_2.png"}


@pytest.mark.parametrize("status", ["running", "interrupted", "failed"])
def test_a_run_that_has_not_finished_is_said_to_be_one(tmp_path, report_script, capsys, status):
    done = write_run(tmp_path / "done", [row("noisy", "sde", 5)])
    (done / "run.json").write_text(json.dumps({"status": "finished"}))
    cut = write_run(tmp_path / "cut", [row("noisy", "mrsampler", 5)])  # results.json of an earlier session
    (cut / "run.json").write_text(json.dumps({"status": status, "error": "signal SIGTERM"}))
    assert report_script.main([str(done), str(cut), "--out", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    note = f"run {cut} is {status}, not finished: the report shows the tables it wrote last"
    assert f"note: {note}" in err and str(done) not in err
    markdown = (tmp_path / "report" / "paper_tables.md").read_text(encoding="utf-8")
    assert f"- {done}: finished\n- {cut}: {status}\n- note: {note}" in markdown
