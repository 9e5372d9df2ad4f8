"""The demo data set: degradation models, determinism, splits and the on-disk layout."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from uir.data import degradations as deg
from uir.data.demo import (
    DEGRADATIONS,
    DEMO_TASKS,
    PHOTOS,
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    load_photo,
    make_demo_dataset,
)

from helpers import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(test_size=32, train_size=32, n_test_per_task=2, n_train_per_task=3)


def rng(seed=0):
    return np.random.default_rng(seed)


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.float64(a) - np.float64(b)) ** 2))


@pytest.fixture(scope="module")
def photo_crop():
    """A 64x64 natural crop (astronaut's suit and badge) in [0, 1]."""
    return np.ascontiguousarray(load_photo("astronaut")[160:224, 96:160])


def direction(angle):
    """Unit vector (col, row) of an angle in degrees, rows pointing down."""
    t = np.deg2rad(angle)
    return np.cos(t), -np.sin(t)


# ----------------------------------------------------------------------------- degradations


def test_every_demo_task_has_a_degradation_returning_float32_in_range(photo_crop):
    assert set(DEGRADATIONS) == set(DEMO_TASKS) == set(deg.PARAM_RANGES)
    for task, fn in DEGRADATIONS.items():
        a = fn(photo_crop, rng(3))
        b = fn(photo_crop, rng(3))
        assert a.dtype == np.float32 and a.shape == photo_crop.shape, task
        assert a.min() >= 0.0 and a.max() <= 1.0, task
        np.testing.assert_array_equal(a, b, err_msg=f"{task} is not deterministic from the rng")
        assert not np.array_equal(a, photo_crop), task


def test_sampled_params_lie_in_their_ranges():
    for task, ranges in deg.PARAM_RANGES.items():
        for seed in range(20):
            params = deg.sample_params(task, rng(seed))
            assert list(params) == list(ranges)
            for key, spec in ranges.items():
                if isinstance(spec, tuple) and spec[0] == "int":
                    assert spec[1] <= params[key] <= spec[2] and isinstance(params[key], int)
                elif isinstance(spec, tuple):
                    assert spec[0] <= params[key] < spec[1]
                else:
                    assert params[key] == spec


def test_bad_inputs_are_rejected_with_useful_messages():
    with pytest.raises(ValueError, match="valid"):
        deg.sample_params("snowy", rng())
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        deg.add_gaussian_noise(np.zeros((8, 8), np.float32), rng())


def test_noise_has_the_reference_sigma_25_over_255():
    img = np.full((64, 64, 3), 0.5, np.float32)  # mid-grey: 0.5 +- 5 sigma never clips
    out = deg.add_gaussian_noise(img, rng())  # default sigma is the reference's 25
    residual = np.float64(out - img).ravel()
    sigma, n = 25.0 / 255.0, residual.size
    assert abs(residual.std() - sigma) < 5 * sigma / np.sqrt(2 * n)
    assert abs(residual.mean()) < 5 * sigma / np.sqrt(n)
    out10 = deg.add_gaussian_noise(img, rng(), sigma=10.0)
    assert abs(np.float64(out10 - img).std() - 10 / 255) < 5 * (10 / 255) / np.sqrt(2 * n)


def test_noise_is_clipped_to_the_unit_range():
    black = np.zeros((32, 32, 3), np.float32)
    out = deg.add_gaussian_noise(black, rng())
    assert out.min() == 0.0 and 0.4 < (out > 0).mean() < 0.6  # half the draws are negative


def test_low_light_scales_brightness_by_the_intended_factor(photo_crop):
    linear = deg.darken(photo_crop, rng(), gamma=1.0, scale=0.4, noise_sigma=0.0)
    np.testing.assert_allclose(linear, 0.4 * photo_crop, rtol=1e-6, atol=1e-7)
    assert linear.mean() / photo_crop.mean() == pytest.approx(0.4, rel=1e-5)
    flat = np.full((8, 8, 3), 0.6, np.float32)
    out = deg.darken(flat, rng(), gamma=2.5, scale=0.5, noise_sigma=0.0)
    np.testing.assert_allclose(out, 0.5 * 0.6**2.5, rtol=1e-5)
    default = deg.darken(photo_crop, rng())
    assert default.mean() < 0.65 * photo_crop.mean()  # gamma >= 2 and scale < 0.65


def test_line_kernel_is_normalised_centred_and_oriented():
    for length, angle in ((5.0, 0.0), (9.0, 90.0), (11.5, 30.0), (7.0, 135.0), (13.0, 171.0)):
        k = np.float64(deg.line_kernel(length, angle))
        r = k.shape[0] // 2
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.sum() == pytest.approx(1.0, abs=1e-6) and k.min() >= 0.0
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)  # point-symmetric
        rows, cols = np.mgrid[-r:r + 1, -r:r + 1]
        x, y = cols, -rows
        cov = np.array([[(k * x * x).sum(), (k * x * y).sum()],
                        [(k * x * y).sum(), (k * y * y).sum()]])
        eigval, eigvec = np.linalg.eigh(cov)
        axis = np.degrees(np.arctan2(eigvec[1, 1], eigvec[0, 1])) % 180.0
        assert min(abs(axis - angle), 180 - abs(axis - angle)) < 1.0
        # uniform segment of the given length (variance L^2/12) smeared by the bilinear tent
        assert np.sqrt(12 * (eigval[1] - 1 / 6)) == pytest.approx(length, abs=0.1)
    with pytest.raises(ValueError, match="length"):
        deg.line_kernel(0.5, 0.0)


def test_motion_blur_removes_high_frequencies_along_its_direction_only():
    texture = rng(1).random((64, 64, 3), dtype=np.float32)
    blurred = deg.add_motion_blur(texture, rng(), length=9.0, angle=0.0)

    def energy(im):
        return float(np.mean(cv2.Laplacian(im, cv2.CV_32F) ** 2))

    assert energy(blurred) < 0.3 * energy(texture)
    # horizontal stripes are constant along x: a horizontal blur leaves them unchanged
    stripes = np.repeat(rng(2).random((64, 1, 3), dtype=np.float32), 64, axis=1)
    np.testing.assert_allclose(deg.add_motion_blur(stripes, rng(), length=9.0, angle=0.0),
                               stripes, atol=1e-6)
    assert np.abs(deg.add_motion_blur(stripes, rng(), length=9.0, angle=90.0) - stripes).max() > 0.1


def test_jpeg_changes_the_image_blockwise_and_is_nearly_idempotent(photo_crop):
    once = deg.add_jpeg_compression(photo_crop, rng(), quality=20)
    twice = deg.add_jpeg_compression(once, rng(), quality=20)
    assert 20.0 < psnr(once, photo_crop) < 40.0
    assert psnr(twice, once) > psnr(once, photo_crop) + 10.0
    assert np.all(once * 255 == np.round(once * 255))  # decoded 8-bit values
    rows, cols = np.mgrid[0:64, 0:64] / 63.0
    smooth = np.stack([0.2 + 0.6 * rows * cols, 0.3 + 0.4 * cols, 0.8 - 0.5 * rows], 2)
    coded = deg.add_jpeg_compression(smooth.astype(np.float32), rng(), quality=10)
    step = np.abs(np.diff(coded, axis=1)).mean(axis=(0, 2))  # step between columns c, c+1
    block_edges = step[7::8]
    assert block_edges.mean() > 3 * np.delete(step, np.arange(7, 63, 8)).mean()


def test_haze_follows_the_scattering_model_for_a_constant_depth(photo_crop):
    out = deg.add_haze(photo_crop, rng(), beta=1.2, airlight=0.9, depth=0.5)
    t = np.exp(-1.2 * 0.5)
    np.testing.assert_allclose(out, photo_crop * t + 0.9 * (1 - t), rtol=1e-5, atol=1e-6)


def test_synthetic_depth_is_smooth_in_range_and_far_at_the_top():
    d = deg.synthetic_depth((64, 48), rng())
    assert d.shape == (64, 48) and d.dtype == np.float32
    assert d.min() == pytest.approx(deg.NEAR_DEPTH, abs=1e-6) and d.max() == pytest.approx(1.0)
    assert d[:8].mean() > d[-8:].mean() + 0.2
    assert np.abs(np.diff(d, axis=0)).max() < 0.1 and np.abs(np.diff(d, axis=1)).max() < 0.1


def test_haze_raises_the_dark_channel_and_lowers_contrast(photo_crop):
    out = deg.add_haze(photo_crop, rng())

    def dark_channel(im):
        return cv2.erode(im.min(axis=2), np.ones((7, 7), np.uint8))

    assert dark_channel(out).mean() > dark_channel(photo_crop).mean() + 0.1
    assert out.std() < 0.8 * photo_crop.std()


@pytest.mark.parametrize("angle", [90.0, 0.0, 45.0])
def test_rain_adds_bright_streaks_along_its_angle(angle):
    flat = np.full((96, 96, 3), 0.3, np.float32)
    out = deg.add_rain(flat, rng(), density=0.004, length=20.0, width=0.7, angle=angle,
                       intensity=0.7)
    streaks = np.float64(out - flat).mean(axis=2)
    assert streaks.min() > -1e-6 and streaks.max() > 0.3  # screen blend only brightens
    assert 0.02 < (streaks > 0.02).mean() < 0.6  # sparse streaks, not a veil

    def shifted_corr(dx, dy):  # correlation with the layer moved by (dx, dy) pixels
        moved = np.roll(streaks, (int(round(dy)), int(round(dx))), axis=(0, 1))
        return np.corrcoef(streaks.ravel(), moved.ravel())[0, 1]

    ux, uy = direction(angle)
    along = shifted_corr(3 * ux, 3 * uy)
    across = shifted_corr(-3 * uy, 3 * ux)
    assert along > 0.5 and across < 0.2, (along, across)


# ----------------------------------------------------------------------------- demo set


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_seed0(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "seed0"
    make_demo_dataset(root, seed=0, tasks=("noisy", "rainy"), **SMALL)
    return root


def test_same_seed_gives_byte_identical_files(demo_seed0, tmp_path):
    again = make_demo_dataset(tmp_path / "again", seed=0, tasks=("noisy", "rainy"), **SMALL)
    assert read_tree(again) == read_tree(demo_seed0)


def test_different_seed_gives_different_images(demo_seed0, tmp_path):
    other = read_tree(make_demo_dataset(tmp_path / "s1", seed=1, tasks=("noisy", "rainy"), **SMALL))
    base = read_tree(demo_seed0)
    assert other.keys() == base.keys()
    pngs = [k for k in base if k.endswith(".png") and "/LQ/" in k]
    assert all(other[k] != base[k] for k in pngs)


def test_a_task_does_not_depend_on_the_other_tasks(demo_seed0, tmp_path):
    alone = read_tree(make_demo_dataset(tmp_path / "alone", seed=0, tasks=("rainy",), **SMALL))
    base = read_tree(demo_seed0)
    pngs = [k for k in alone if k.endswith(".png")]
    assert pngs and all(alone[k] == base[k] for k in pngs)


def test_layout_pairs_lq_and_gt_by_identical_names(demo_seed0):
    manifest = json.loads((demo_seed0 / "manifest.json").read_text())
    for split, count in (("test", SMALL["n_test_per_task"]), ("train", SMALL["n_train_per_task"])):
        size = SMALL[f"{split}_size"]
        for task in ("noisy", "rainy"):
            lq = sorted(p.name for p in (demo_seed0 / split / task / "LQ").iterdir())
            gt = sorted(p.name for p in (demo_seed0 / split / task / "GT").iterdir())
            assert lq == gt and len(lq) == count
            assert lq == [r["name"] for r in manifest["images"][split][task]]
            image = cv2.imread(str(demo_seed0 / split / task / "LQ" / lq[0]), cv2.IMREAD_UNCHANGED)
            assert image.shape == (size, size, 3) and image.dtype == np.uint8


def test_noisy_test_pairs_differ_by_sigma_25_noise(demo_seed0):
    folder = demo_seed0 / "test" / "noisy"
    residuals = []
    for name in sorted(p.name for p in (folder / "GT").iterdir()):
        gt = cv2.imread(str(folder / "GT" / name)).astype(np.float64)
        lq = cv2.imread(str(folder / "LQ" / name)).astype(np.float64)
        inside = (gt > 40) & (gt < 215)  # away from clipping
        residuals.append((lq - gt)[inside])
    residual = np.concatenate(residuals)
    assert abs(residual.std() - 25.0) < 1.5  # plus the 8-bit rounding (std 0.29)


def test_manifest_records_seed_tasks_photos_and_params(demo_seed0):
    manifest = json.loads((demo_seed0 / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["tasks"] == ["noisy", "rainy"]
    assert manifest["photos"] == {"test": list(TEST_PHOTOS), "train": list(TRAIN_PHOTOS)}
    for split in ("test", "train"):
        for task in ("noisy", "rainy"):
            for record in manifest["images"][split][task]:
                assert record["photo"] in manifest["photos"][split]
                assert set(record["params"]) == set(deg.PARAM_RANGES[task])
    assert manifest["images"]["test"]["noisy"][0]["params"] == {"sigma": 25.0}


def test_train_and_test_photos_are_disjoint_even_pixelwise():
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    assert set(TRAIN_PHOTOS) | set(TEST_PHOTOS) == set(PHOTOS)
    test_images = [load_photo(name) for name in TEST_PHOTOS]
    for name in TRAIN_PHOTOS:
        train_image = load_photo(name)  # also proves every photo loads without a download
        assert not any(t.shape == train_image.shape and np.array_equal(t, train_image)
                       for t in test_images), name


def test_refuses_a_non_empty_folder_unless_overwrite(demo_seed0, tmp_path):
    root = make_demo_dataset(tmp_path / "out", seed=0, tasks=("noisy", "rainy"), **SMALL)
    (root / "notes.txt").write_text("keep me")
    refusal = r"is not empty; pass overwrite=True \(CLI: --overwrite\)"
    with pytest.raises(FileExistsError, match=refusal):
        make_demo_dataset(root, seed=0, tasks=("noisy",), **SMALL)
    make_demo_dataset(root, seed=0, tasks=("noisy",), overwrite=True, **SMALL)
    assert not (root / "test" / "rainy").exists()  # stale task removed
    assert (root / "notes.txt").read_text() == "keep me"  # files it did not write are kept
    assert json.loads((root / "manifest.json").read_text())["tasks"] == ["noisy"]


def test_rejects_unknown_tasks_and_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="demo tasks"):
        make_demo_dataset(tmp_path / "a", tasks=("snowy",))
    with pytest.raises(ValueError, match="test_size"):
        make_demo_dataset(tmp_path / "b", test_size=8)
    with pytest.raises(ValueError, match="seed"):
        make_demo_dataset(tmp_path / "c", seed=-1)


def load_cli():
    return load_script("scripts/make_demo_data.py")


def test_cli_writes_the_set_and_refuses_to_overwrite(tmp_path, capsys):
    cli = load_cli()
    argv = ["--out", str(tmp_path / "cli"), "--seed", "3", "--tasks", "hazy", "--size", "32",
            "--train-size", "32", "--n-test", "1", "--n-train", "1"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "cli" / "test" / "hazy" / "LQ").iterdir()) == [
        "000_astronaut.png"]
    assert cli.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite"]) == 0


def test_dark_fraction_darkens_training_gt_but_not_low_light_or_test(demo_seed0, tmp_path):
    tasks = ("noisy", "low-light")
    plain = make_demo_dataset(tmp_path / "plain", seed=0, tasks=tasks, **SMALL)
    dark = make_demo_dataset(tmp_path / "dark", seed=0, tasks=tasks, train_dark_fraction=1.0, **SMALL)
    manifest = json.loads((dark / "manifest.json").read_text())
    assert manifest["train_dark_fraction"] == 1.0
    for record in manifest["images"]["train"]["noisy"]:
        s = record["exposure"]
        assert 0.2 <= s <= 0.7
        gt0 = cv2.imread(str(plain / "train/noisy/GT" / record["name"])).astype(np.float64)
        gt1 = cv2.imread(str(dark / "train/noisy/GT" / record["name"])).astype(np.float64)
        assert np.abs(gt1 - s * gt0).max() <= 1.0  # the same crop, scaled, rounded twice
        lq1 = cv2.imread(str(dark / "train/noisy/LQ" / record["name"])).astype(np.float64)
        inside = (gt1 > 40) & (gt1 < 215)
        if inside.sum() > 100:  # the degradation is applied to the darkened GT
            assert abs((lq1 - gt1)[inside].std() - 25.0) < 4.0
    for split, task in (("train", "low-light"), ("test", "noisy"), ("test", "low-light")):
        for kind in ("GT", "LQ"):
            a, b = read_tree(plain / split / task / kind), read_tree(dark / split / task / kind)
            assert a == b, (split, task, kind)
    assert not any("exposure" in r for r in manifest["images"]["train"]["low-light"])


def test_dark_fraction_zero_keeps_the_data_set_byte_identical(demo_seed0, tmp_path):
    again = make_demo_dataset(tmp_path / "zero", seed=0, tasks=("noisy", "rainy"),
                              train_dark_fraction=0.0, **SMALL)
    pngs = read_tree(again)
    assert {k: v for k, v in pngs.items() if k.endswith(".png")} == \
        {k: v for k, v in read_tree(demo_seed0).items() if k.endswith(".png")}


def test_dark_fraction_outside_the_unit_interval_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"train_dark_fraction must lie in \[0, 1\], got 1.5"):
        make_demo_dataset(tmp_path / "a", train_dark_fraction=1.5)


def test_cli_passes_the_dark_fraction_and_names_a_bad_one(tmp_path, capsys):
    cli = load_cli()
    argv = ["--out", str(tmp_path / "cli"), "--tasks", "noisy", "--size", "32", "--train-size", "32",
            "--n-test", "1", "--n-train", "2"]
    assert cli.main(argv + ["--train-dark-fraction", "1.0"]) == 0
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["train_dark_fraction"] == 1.0
    assert all(r["exposure"] < 1.0 for r in manifest["images"]["train"]["noisy"])
    assert cli.main(argv + ["--overwrite", "--train-dark-fraction", "-0.1"]) == 2
    assert "train_dark_fraction must lie in [0, 1], got -0.1" in capsys.readouterr().err


def test_workers_write_the_same_files_as_one_process(demo_seed0, tmp_path):
    parallel = make_demo_dataset(tmp_path / "parallel", seed=0, tasks=("noisy", "rainy"), workers=3, **SMALL)
    assert read_tree(parallel) == read_tree(demo_seed0)  # manifest included
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        make_demo_dataset(tmp_path / "bad", workers=0)
