"""A run ended from outside: SIGTERM ends it as interrupted, keeping every finished image, and
a run killed with SIGKILL then resumed writes the bytes of an uninterrupted run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from helpers import REPO
from uir.evaluation import read_csv

DEMO = REPO / "options" / "demo.yml"


def test_sigterm_ends_a_run_as_interrupted_and_keeps_finished_images(tmp_path):
    out = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "test.py", "-opt", str(DEMO), "--dataset", "noisy", "hazy",
                             "--sampler", "posterior", "--nfe", "100", "--batch-size", "1", "--results-root", str(out),
                             "--no-lpips", "--no-fid"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    status = out / "demo" / "run.json"
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.rglob("*.png")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert json.loads(status.read_text())["status"] == "interrupted"
    assert not (out / "demo" / ".lock").exists()
    rows = [r for r in read_csv(out / "demo" / "per_image.csv") if r["output"]]
    assert rows and all((out / "demo" / r["output"]).is_file() for r in rows)


def test_sigkill_then_resume_gives_the_bytes_of_an_uninterrupted_run(tmp_path):
    common = [sys.executable, "test.py", "-opt", str(DEMO), "--dataset", "noisy", "--max-images", "3",
              "--sampler", "mrsampler", "--nfe", "5", "--batch-size", "1", "--no-lpips", "--no-fid"]
    whole = subprocess.run(common + ["--results-root", str(tmp_path / "whole")], cwd=REPO, capture_output=True)
    assert whole.returncode == 0, whole.stderr
    cut = tmp_path / "cut"
    proc = subprocess.Popen(common + ["--results-root", str(cut)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(cut.rglob("*.png")):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    again = subprocess.run(common + ["--results-root", str(cut), "--resume"], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    pngs = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*.png"))
    assert len(pngs) == 3
    for rel in pngs:
        assert (cut / rel).read_bytes() == (tmp_path / "whole" / rel).read_bytes(), rel
    timeless = lambda rows: [{k: v for k, v in r.items() if k != "sec_per_image"} for r in rows]  # noqa: E731
    assert timeless(read_csv(cut / "demo" / "results.csv")) == timeless(read_csv(tmp_path / "whole" / "demo" / "results.csv"))
