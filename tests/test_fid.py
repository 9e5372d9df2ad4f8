"""FID against pytorch-fid's own ``calculate_fid_given_paths`` on folders written here, with a
randomly initialised FID Inception (nothing is downloaded); weights handling; small-set rules.

The random Inception's batch norms are calibrated on the test images so that its pool3
features have the spread of real ones (about 0.5); uncalibrated, they vanish and any FID
would pass a 1e-3 tolerance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from pytorch_fid import fid_score, inception

from uir.metrics.fid import (
    FID_DIMS,
    FID_WEIGHTS,
    FID_WEIGHTS_FILE,
    FidAccumulator,
    FidInception,
    FidStatistics,
    FidUnavailable,
    FidWeightsMissing,
    fid_unavailable_reason,
    frechet_distance,
    image_files,
)

SIZES = [(40, 40)] * 3 + [(24, 32)] * 2  # two sizes; the restored and GT folders alike


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """uint8 RGB [H, W, 3]: 8x8 blocks of random colour plus noise."""
    blocks = rng.random((height // 8 + 1, width // 8 + 1, 3))
    x = np.kron(blocks, np.ones((8, 8, 1)))[:height, :width] + 0.1 * rng.standard_normal((height, width, 3))
    return (255 * np.clip(x, 0, 1)).round().astype(np.uint8)


def as_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in images])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{"restored": (folder, [uint8 images]), "gt": ...}: PNGs of SIZES."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("fid")
    out = {}
    for name in ("restored", "gt"):
        folder = root / name
        folder.mkdir()
        images = [smooth_image(rng, h, w) for h, w in SIZES]
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i:03d}.png")
        out[name] = (folder, images)
    return out


@pytest.fixture(scope="module")
def random_weights(folders, tmp_path_factory) -> Path:
    """A random FID Inception state dict (torchvision's Inception3 keys, as the real file), its
    batch norms calibrated on the GT images; saved to a file."""
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = this batch's
    x = as_batch(folders["gt"][1][:3]).float() / 255
    with torch.no_grad():
        net.train()(F.interpolate(x, size=(299, 299), mode="bilinear") * 2 - 1)
    path = tmp_path_factory.mktemp("weights") / "random_fid_inception.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def pytorch_fid_uses(random_weights, monkeypatch):
    """pytorch-fid's own loader hands out the random weights instead of downloading."""
    monkeypatch.setattr(inception, "load_state_dict_from_url",
                        lambda *args, **kwargs: torch.load(random_weights, weights_only=True))


@pytest.mark.slow  # two 2048x2048 matrix square roots (pytorch-fid's and ours): 30 s idle, 4 min on a busy 2-core
def test_fid_equals_pytorch_fid_on_the_written_folders(folders, random_weights, pytorch_fid_uses, monkeypatch):
    """Batched (equal sizes together) and one image at a time, from uint8 tensors, against
    ``calculate_fid_given_paths([restored, gt], batch_size=1, dims=2048)`` on the PNGs."""
    recorded = []  # the statistics pytorch-fid computes for each folder
    compute = fid_score.compute_statistics_of_path
    monkeypatch.setattr(fid_score, "compute_statistics_of_path",
                        lambda *args, **kwargs: recorded.append(compute(*args, **kwargs)) or recorded[-1])
    (restored_dir, restored), (gt_dir, gt) = folders["restored"], folders["gt"]
    expected = fid_score.calculate_fid_given_paths([str(restored_dir), str(gt_dir)], 1, "cpu", FID_DIMS,
                                                   num_workers=0)
    assert expected > 1.0  # features that differ: the tolerance below means something

    fid = FidInception.load("cpu", weights_file=random_weights)
    batched = FidAccumulator(fid)
    batched.add("point", [0, 1, 2], as_batch(restored[:3]))
    batched.add("point", [3, 4], as_batch(restored[3:]))
    batched.gt_from_folder("task", gt_dir)
    score = batched.score("point", "task")
    assert abs(score.value - expected) < 1e-3
    assert (score.images, score.gt_images) == (5, 5)

    single = FidAccumulator(fid)
    for i, (image, gt_image) in enumerate(zip(restored, gt)):
        single.add("point", [i], as_batch([image]))
        single.add("gt", [i], as_batch([gt_image]))
    np.testing.assert_allclose(np.stack(list(single.features["point"].values())),
                               np.stack(list(batched.features["point"].values())), rtol=1e-4, atol=1e-5)
    # Same statistics as pytorch-fid's, so the same calculate_frechet_distance gives the same FID.
    for ours, (mu, sigma) in ((single.statistics("point"), recorded[0]), (single.statistics("gt"), recorded[1])):
        np.testing.assert_allclose(ours.mu, mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.sigma, sigma, rtol=1e-4, atol=1e-6)


def test_fid_features_of_files_equal_features_of_their_bytes(folders, random_weights):
    """A resumed run recomputes earlier images' features from its PNGs: the same numbers."""
    fid = FidInception.load("cpu", weights_file=random_weights)
    folder, images = folders["restored"]
    from_files = fid.features_of_files(image_files(folder)[:3], batch_size=2)
    np.testing.assert_array_equal(from_files[:2], fid.features(as_batch(images[:2])))
    np.testing.assert_allclose(from_files, fid.features(as_batch(images[:3])), rtol=1e-4, atol=1e-5)
    assert from_files.shape == (3, FID_DIMS) and from_files.std() > 0.1


def test_fid_features_combine_across_sessions_in_image_order(tmp_path):
    """Parts from sessions or ranks, added in any order: the statistics of the whole, exactly (the
    rows are taken in image order), and the statistics file pytorch-fid reads."""
    rng = np.random.default_rng(1)
    whole = rng.random((7, FID_DIMS)).astype(np.float32)
    acc = FidAccumulator(FidInception(torch.nn.Identity(), torch.device("cpu")))
    acc._store("p", [5, 6], whole[5:])
    other = FidAccumulator(acc.inception)
    other._store("p", [3, 4, 0], whole[[3, 4, 0]])
    other._store("p", [1, 2], whole[1:3])
    acc.merge(other.features)
    stats = acc.statistics("p")
    assert stats.images == 7
    np.testing.assert_array_equal(stats.mu, np.mean(whole.astype(np.float64), axis=0))
    np.testing.assert_array_equal(stats.sigma, np.cov(whole.astype(np.float64), rowvar=False))
    stats.save(tmp_path / "stats.npz")
    loaded = FidStatistics.load(tmp_path / "stats.npz")
    assert loaded.images == 7 and np.array_equal(loaded.sigma, stats.sigma)
    with np.load(tmp_path / "stats.npz") as f:  # pytorch-fid reads the same file
        assert np.array_equal(f["mu"], stats.mu)
    np.savez(tmp_path / "pytorch_fid.npz", mu=stats.mu, sigma=stats.sigma)  # python -m pytorch_fid --save-stats
    assert FidStatistics.load(tmp_path / "pytorch_fid.npz").images is None  # unknown, not "too few"


def test_fid_of_fewer_than_two_images_is_empty_not_hung():
    """np.cov of one image is NaN and pytorch-fid's sqrtm then never finishes: no value, a note."""
    rng = np.random.default_rng(2)
    one = FidStatistics.from_features(rng.random((1, FID_DIMS)))
    three = FidStatistics.from_features(rng.random((3, FID_DIMS)))
    score = frechet_distance(one, three)
    assert score.value is None and (score.images, score.gt_images) == (1, 3)
    assert "at least 2 images" in score.note
    with pytest.raises(ValueError, match=r"uint8 images \[B, 3, H, W\]"):
        FidAccumulator(FidInception(torch.nn.Identity(), torch.device("cpu"))).add("p", [0], torch.zeros(1, 3, 8, 8))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME; downloads fail (conftest.no_downloads)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path


def test_fid_missing_weights_and_failed_download_name_file_url_and_folder(torch_home):
    folder = torch_home / "hub" / "checkpoints"
    assert FidInception.create("cpu") is None
    with pytest.raises(FidWeightsMissing) as caught:
        FidInception.load("cpu")
    for message in (str(caught.value), fid_unavailable_reason()):
        for part in (FID_WEIGHTS_FILE, FID_WEIGHTS.url, str(folder), "could not be downloaded"):
            assert part in message
    assert "URLError" in str(caught.value)


def test_fid_weights_from_the_hub_cache_or_a_named_file(torch_home, random_weights, tmp_path):
    cached = torch_home / "hub" / "checkpoints" / FID_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(random_weights.read_bytes())
    x = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8)
    from_cache = FidInception.create("cpu").features(x)
    np.testing.assert_array_equal(from_cache, FidInception.load("cpu", random_weights).features(x))

    with pytest.raises(FidUnavailable, match="nothing.pth does not exist"):
        FidInception.create("cpu", weights_file=tmp_path / "nothing.pth")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pth")
    with pytest.raises(FidUnavailable, match="wrong.pth does not fit the FID Inception"):
        FidInception.load("cpu", weights_file=tmp_path / "wrong.pth")


@pytest.mark.slow  # two 2048x2048 matrix square roots
def test_fid_column_of_a_test_py_run_equals_pytorch_fid_on_its_folders(folders, random_weights, pytorch_fid_uses,
                                                                       tmp_path, capsys):
    """End to end: test.py's fid column for a sweep point equals pytorch-fid's
    calculate_fid_given_paths([restored folder, GT folder], batch_size=1, dims=2048), as the
    reference computes it; fid_images counts the images."""
    import yaml

    from helpers import load_script
    from uir.evaluation import read_csv
    from workspace import make_workspace, raw_options

    ws = make_workspace(tmp_path)  # for its tiny network; the data are this module's two folders
    data = tmp_path / "fid_data" / "noisy"
    (data / "LQ").mkdir(parents=True)
    for src, kind in ((folders["restored"][0], "LQ"), (folders["gt"][0], "GT")):
        (data / kind).mkdir(exist_ok=True)
        for png in sorted(src.iterdir()):
            (data / kind / png.name).write_bytes(png.read_bytes())
    raw = raw_options(ws, "res", data_root=str(data.parent), fid_weights=str(random_weights), lpips=False,
                      batch_size=2, sweep={"samplers": ["mrsampler"], "nfe": [2]})
    opt = tmp_path / "o.yml"
    opt.write_text(yaml.safe_dump(raw))
    assert load_script("test.py").main(["-opt", str(opt)]) == 0, capsys.readouterr().err
    run_dir = ws / "res" / "t"
    (row,) = [r for r in read_csv(run_dir / "results.csv") if r["sampler"] == "mrsampler"]
    expected = fid_score.calculate_fid_given_paths([str(run_dir / "noisy" / "mrsampler_nfe2"), str(data / "GT")],
                                                   1, "cpu", FID_DIMS, num_workers=0)
    assert row["fid_images"] == 5 and abs(row["fid"] - expected) < 1e-3, (row["fid"], expected)


def test_a_non_finite_fid_is_no_value():
    """Statistics holding a NaN (a feature overflowed) give an empty cell with a note, never a NaN."""
    rng = np.random.default_rng(3)
    good = FidStatistics.from_features(rng.random((3, FID_DIMS)))
    bad = FidStatistics(good.mu.copy(), good.sigma, 3)
    bad.mu[0] = np.nan
    score = frechet_distance(bad, good)
    assert score.value is None and "no FID" in score.note
