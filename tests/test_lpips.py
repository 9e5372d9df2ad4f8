"""LPIPS: where its AlexNet weights come from (named file, hub cache, torchvision's download,
or a clear message and no metric) and what it sees (the output clamped to [0, 1], as the
reference's in-place ``tensor2img`` clamp leaves it). Random AlexNet weights only: nothing is
downloaded."""
from __future__ import annotations

import warnings

import pytest
import torch

from uir.metrics import (
    ALEXNET_WEIGHTS_FILE,
    LpipsMetric,
    LpipsUnavailable,
    LpipsWeightsMissing,
    lpips_input,
    unavailable_reason,
)
from uir.metrics.lpips_metric import ALEXNET_WEIGHTS_URL


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME (hub cache <tmp>/hub/checkpoints); downloads fail (conftest.no_downloads)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # undo any torch.hub.set_dir
    return tmp_path


@pytest.fixture
def random_alexnet():
    """(the lpips package's network with a random AlexNet trunk, that trunk as torchvision's
    AlexNet state dict ``features.<i>.<param>``)."""
    import lpips

    torch.manual_seed(0)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained= flag
        warnings.simplefilter("ignore", UserWarning)
        package_net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    features = {}
    for key, value in package_net.net.state_dict().items():  # slice<k>.<i>.<p> -> features.<i>.<p>
        _, index, param = key.split(".")
        features[f"features.{index}.{param}"] = value.clone()
    return package_net, features


def assert_same_as_package(metric: LpipsMetric, package_net) -> None:
    out01, gt01 = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    value = metric(out01, gt01)
    assert value.shape == (2,)
    with torch.no_grad():
        expected = package_net(gt01 * 2 - 1, out01 * 2 - 1).reshape(-1)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    assert torch.all(value > 0)
    assert torch.equal(metric(gt01, gt01), torch.zeros(2))


def test_lpips_missing_weights_and_failed_download_give_the_message_and_no_metric(torch_home):
    cached = torch_home / "hub" / "checkpoints" / ALEXNET_WEIGHTS_FILE
    assert LpipsMetric.create("cpu") is None
    reason = unavailable_reason()
    for part in (ALEXNET_WEIGHTS_FILE, ALEXNET_WEIGHTS_URL, str(cached.parent), "could not be downloaded"):
        assert part in reason
    with pytest.raises(LpipsWeightsMissing, match="URLError: <urlopen error no network in the tests"):
        LpipsMetric.load("cpu")
    assert not cached.exists()


def test_lpips_downloads_missing_weights_into_the_hub_cache(torch_home, monkeypatch, random_alexnet):
    package_net, features = random_alexnet
    urls = []

    def download(url, dst, *args, **kwargs):  # stands in for the network
        urls.append(url)
        torch.save(features, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    metric = LpipsMetric.create("cpu")
    assert urls == [ALEXNET_WEIGHTS_URL]
    assert (torch_home / "hub" / "checkpoints" / ALEXNET_WEIGHTS_FILE).is_file()
    assert_same_as_package(metric, package_net)


def test_lpips_named_weights_file_is_used(torch_home, tmp_path, random_alexnet):
    package_net, features = random_alexnet
    path = tmp_path / "my_alexnet.pth"
    torch.save(features, path)
    assert_same_as_package(LpipsMetric.load("cpu", weights_file=path), package_net)
    assert unavailable_reason() is not None  # the hub cache stays empty: the named file was read

    with pytest.raises(LpipsUnavailable, match="missing.pth does not exist"):
        LpipsMetric.create("cpu", weights_file=tmp_path / "missing.pth")
    nan = dict(features)
    nan["features.0.weight"] = torch.full_like(nan["features.0.weight"], float("nan"))
    torch.save(nan, tmp_path / "nan.pth")
    with pytest.raises(LpipsUnavailable, match=r"nan.pth is damaged: tensor 'features.0.weight' holds NaN or infinite"):
        LpipsMetric.create("cpu", weights_file=tmp_path / "nan.pth")  # it would make every LPIPS NaN
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(LpipsUnavailable, match="other.pth has no tensor 'features.0.bias'"):
        LpipsMetric.create("cpu", weights_file=tmp_path / "other.pth")


def test_lpips_unreadable_cached_file_raises(torch_home):
    path = torch_home / "hub" / "checkpoints" / ALEXNET_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    assert unavailable_reason() is None
    with pytest.raises(LpipsUnavailable, match=r"AlexNet weights \(LPIPS backbone\) in the torch hub cache, .*, is not a "
                                                r"file written by torch.save.* delete it"):
        LpipsMetric.create("cpu")


def test_lpips_plumbing_loads_cached_backbone_random_weights(torch_home, random_alexnet):
    """Plumbing, not a number: a random AlexNet trunk saved where torchvision caches it is
    loaded, and the result equals the lpips package's own network holding that trunk."""
    package_net, features = random_alexnet
    path = torch_home / "hub" / "checkpoints" / ALEXNET_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(features, path)
    assert_same_as_package(LpipsMetric.create("cpu"), package_net)


def test_lpips_sees_the_output_clamped_not_quantized(torch_home, tmp_path, random_alexnet):
    """The reference's LPIPS reads the output after tensor2img clamped it in place: an output
    outside [0, 1] (posterior / sde at low NFE) is scored as clamped, without 8-bit rounding."""
    package_net, features = random_alexnet
    torch.save(features, tmp_path / "alexnet.pth")
    metric = LpipsMetric.load("cpu", weights_file=tmp_path / "alexnet.pth")
    torch.manual_seed(1)
    gt01 = torch.rand(2, 3, 40, 40)
    out = gt01 + 0.8 * torch.randn(2, 3, 40, 40)  # far outside [0, 1]
    assert out.min() < -1 and out.max() > 2
    value = metric(out, gt01)
    with torch.no_grad():
        clamped = package_net(gt01 * 2 - 1, out.clamp(0, 1) * 2 - 1).reshape(-1)
        unclamped = package_net(gt01 * 2 - 1, out * 2 - 1).reshape(-1)
        quantized = package_net(gt01 * 2 - 1, (out.clamp(0, 1) * 255).round() / 255 * 2 - 1).reshape(-1)
    torch.testing.assert_close(value, clamped, rtol=1e-5, atol=1e-6)
    assert (value - unclamped).abs().min() > 1e-2
    assert (value - quantized).abs().max() > 1e-7
    assert torch.equal(lpips_input(out), out.clamp(0, 1)) and lpips_input(out) is not out


def test_lpips_weights_option_fills_the_column_of_a_run(torch_home, tmp_path, random_alexnet):
    """`lpips_weights` names the file through test.py's options: the column is filled, and equals
    the package's LPIPS of the clamped output against GT; without it (and no download) it is empty."""
    import numpy as np

    from uir.data.paired import read_image
    from uir.evaluation import read_csv, run
    from workspace import make_task, make_workspace, options

    package_net, features = random_alexnet
    torch.save(features, tmp_path / "alexnet.pth")
    ws = make_workspace(tmp_path / "ws")
    make_task(ws / "big", "noisy", [("a", 64, 64, 3), ("b", 64, 64, 3)], np.random.default_rng(0))  # AlexNet's minimum
    named = run(options(ws, "with", data_root=str(ws / "big"), lpips_weights=str(tmp_path / "alexnet.pth")),
                progress=False)
    row = next(r for r in read_csv(named.paths["per_image"]) if r["sampler"] == "sde")
    out = torch.from_numpy(read_image(named.run_dir / row["output"])).permute(2, 0, 1)[None]
    gt = torch.from_numpy(read_image(ws / "big" / "noisy" / "GT" / f"{row['image']}.png")).permute(2, 0, 1)[None]
    with torch.no_grad():
        on_png = float(package_net(gt * 2 - 1, out * 2 - 1))
    assert row["lpips"] == pytest.approx(on_png, abs=0.02)  # the run saw the float output, the PNG is 8-bit
    assert all(r["lpips"] is not None for r in named.table)
    unnamed = run(options(ws, "without", data_root=str(ws / "big")), progress=False)
    assert all(r["lpips"] is None for r in unnamed.table)
