"""scripts/sample_spread.py: splitting one sample's error into spread S and the samples' mean's error D."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import load_script

REPO = Path(__file__).resolve().parents[1]
spread = load_script("scripts/sample_spread.py")


def test_split_recovers_spread_and_bias_of_constructed_samples():
    """K samples m + e_k with sum_k e_k = 0 and |e_k|^2 = c: their mean is m exactly, one sample's
    mean squared error is |m - x|^2 + c, and the split returns S = c K / (K - 1) (the unbiased
    spread about the unknown true mean) and D = |m - x|^2 - c / (K - 1)."""
    k, n = 4, 1000
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    m = x + 0.3  # bias: |m - x|^2 / n = 0.09
    half = rng.normal(size=(k // 2, n))
    half /= np.sqrt((half**2).mean(axis=1, keepdims=True))
    e = np.concatenate([half, -half])  # sum_k e_k = 0, every |e_k|^2 / n = 1
    samples = m + 0.5 * e  # c = 0.25
    one = np.mean([np.mean((s - x) ** 2) for s in samples])
    mean_k = np.mean((samples.mean(axis=0) - x) ** 2)
    assert one == pytest.approx(0.09 + 0.25) and mean_k == pytest.approx(0.09)
    s, d = spread.spread_split(one, mean_k, k)
    assert s == pytest.approx(0.25 * k / (k - 1))
    assert d == pytest.approx(0.09 - 0.25 / (k - 1))


def test_exact_posterior_samples_lose_3_db_against_their_mean():
    """With x and the samples i.i.d. given y (here N(0, 1) around a known mean), E|x_s - x|^2 =
    2 Var = twice the MMSE: one sample is 10 log10 2 dB below the MMSE estimate, and the split
    finds S = D."""
    rng = np.random.default_rng(1)
    k, n = 8, 400_000
    mean = rng.normal(size=n)
    x = mean + rng.normal(size=n)
    samples = mean + rng.normal(size=(k, n))
    one = np.mean((samples - x) ** 2)
    mean_k = np.mean((samples.mean(axis=0) - x) ** 2)
    s, d = spread.spread_split(one, mean_k, k)
    assert s / d == pytest.approx(1.0, abs=0.02)
    assert spread.psnr_of_mse(d) - spread.psnr_of_mse(one) == pytest.approx(10 * math.log10(2), abs=0.05)


def test_task_rows_on_images():
    """Two 16x16 images of one task, two samples each: GT 100, samples 100 +- 10 (mean exact),
    LQ 120; crop 1."""
    gt = np.full((16, 16, 3), 100, np.uint8)
    images = [("noisy", "a"), ("noisy", "b")]
    samples = {i: [gt + np.uint8(10), gt - np.uint8(10)] for i in images}
    rows = spread.task_rows(samples, {i: gt for i in images}, {i: gt + np.uint8(20) for i in images},
                            {"noisy": images}, crop=1)
    (row,) = rows
    assert row["task"] == "noisy"
    assert row["lq"] == pytest.approx(spread.psnr_of_mse(400.0))
    assert row["one"] == pytest.approx(spread.psnr_of_mse(100.0))
    assert row["mean_k"] == math.inf  # the two samples average to GT exactly
    # S = 100 * 2 / 1 = 200 > one-sample error 100, so D = -100: no PSNR for it
    assert math.isnan(row["d"]) and math.isnan(row["s_over_d"])


def test_split_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        spread.spread_split(1.0, 1.0, 1)


def test_script_runs_the_demo_and_reads_its_runs_back(tmp_path, monkeypatch, capsys):
    """Two posterior-5 samples of the first demo photo per task: one run folder per base seed,
    one table row per task, the LQ column is test.py's PSNR of the input, and --resume reuses the
    runs (same table, no new folder)."""
    from uir.data.paired import read_image_uint8
    from uir.metrics import image_metrics

    monkeypatch.chdir(REPO)
    argv = ["--samples", "2", "--nfe", "5", "--max-images", "1", "--results-root", str(tmp_path), "--device", "cpu"]
    table = spread.main(argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spread_posterior5_seed0", "spread_posterior5_seed100"]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()[2:]}
    assert sorted(rows) == sorted(["motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy", "rainy"])
    for task, cells in rows.items():
        (lq_path,) = sorted((REPO / "demo" / "test" / task / "LQ").iterdir())[:1]
        gt_path = REPO / "demo" / "test" / task / "GT" / lq_path.name
        expected = image_metrics(read_image_uint8(lq_path), read_image_uint8(gt_path), 4)["psnr"]
        assert float(cells[1]) == pytest.approx(expected, abs=0.006), task
    assert spread.main(argv + ["--resume"]) == table
    assert len(list(tmp_path.iterdir())) == 2


def test_a_bad_option_is_reported_without_a_traceback():
    import subprocess

    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "sample_spread.py"), "--sampler", "foo"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "sample_spread.py: error:" in proc.stderr and "'foo' is not valid" in proc.stderr
    assert "Traceback" not in proc.stderr
