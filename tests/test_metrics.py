"""PSNR / SSIM (numpy reference and batched torch) against the reference goldens
(LPIPS: test_lpips.py). Goldens: metrics_golden.pt, `pairs` of uint8 RGB images with the reference's
metrics for every `crop<N>` entry."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from uir.metrics import (
    METRIC_NAMES,
    batch_image_metrics,
    batch_rgb_to_y,
    crop_border,
    gaussian_kernel_1d,
    image_metrics,
    psnr,
    psnr_y,
    quantize_to_uint8,
    rgb_to_y,
    ssim,
    ssim_y,
    to_uint8,
)

# Contract for the torch implementation (the reference numbers are float64).
TORCH_TOL = {"psnr": 1e-3, "ssim": 1e-5, "psnr_y": 1e-3, "ssim_y": 1e-5}
NUMPY_TOL = 1e-8


def golden_cases(golden):
    """(out_rgb uint8 [H,W,3], gt_rgb, crop, expected dict) for every pair and crop entry."""
    pairs = golden("metrics_golden.pt")["pairs"]
    assert len(pairs) > 0, "metrics_golden.pt has no pairs"
    cases = []
    for pair in pairs:
        crops = [key for key in pair if key.startswith("crop")]
        assert crops, f"golden pair without crop entries: keys {sorted(pair)}"
        for key in crops:
            expected = pair[key]
            assert set(expected) == set(METRIC_NAMES), f"{key}: keys {sorted(expected)}"
            cases.append((pair["out_rgb"], pair["gt_rgb"], int(key[len("crop"):]), expected))
    return cases


def assert_metric(name, value, expected, tol):
    value, expected = float(value), float(expected)
    if math.isinf(expected):
        assert value == expected, f"{name}: {value} != {expected}"
    else:
        assert abs(value - expected) <= tol, f"{name}: {value} vs golden {expected}"


def chw(img_hwc: torch.Tensor) -> torch.Tensor:
    return img_hwc.permute(2, 0, 1).contiguous()


def random_pair(seed=0, shape=(40, 52, 3)):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, size=shape, dtype=np.uint8)
    noise = rng.integers(-20, 21, size=shape)
    out = np.clip(gt.astype(int) + noise, 0, 255).astype(np.uint8)
    return out, gt


# --------------------------------------------------------------------------- goldens


def test_numpy_reference_matches_golden(golden):
    for out, gt, crop, expected in golden_cases(golden):
        got = image_metrics(out.numpy(), gt.numpy(), crop)
        for name in METRIC_NAMES:
            assert_metric(name, got[name], expected[name], NUMPY_TOL)


def test_numpy_single_metric_functions_match_golden(golden):
    functions = {"psnr": psnr, "ssim": ssim, "psnr_y": psnr_y, "ssim_y": ssim_y}
    for out, gt, crop, expected in golden_cases(golden):
        for name, fn in functions.items():
            assert_metric(name, fn(out.numpy(), gt.numpy(), crop=crop), expected[name], NUMPY_TOL)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_torch_matches_golden_per_image(golden, dtype):
    for out, gt, crop, expected in golden_cases(golden):
        got = batch_image_metrics(chw(out)[None].to(dtype), chw(gt)[None].to(dtype), crop)
        for name in METRIC_NAMES:
            assert got[name].shape == (1,) and got[name].dtype == torch.float64
            assert_metric(name, got[name][0], expected[name], TORCH_TOL[name])


def test_torch_batched_by_size_matches_golden_and_single(golden):
    groups = defaultdict(list)
    for out, gt, crop, expected in golden_cases(golden):
        groups[(tuple(out.shape), crop)].append((out, gt, expected))
    for (_, crop), items in groups.items():
        out = torch.stack([chw(o) for o, _, _ in items])
        gt = torch.stack([chw(g) for _, g, _ in items])
        batched = batch_image_metrics(out, gt, crop)
        for i, (_, _, expected) in enumerate(items):
            single = batch_image_metrics(out[i : i + 1], gt[i : i + 1], crop)
            for name in METRIC_NAMES:
                assert_metric(name, batched[name][i], expected[name], TORCH_TOL[name])
                assert_metric(name, batched[name][i], single[name][0], 1e-12)


# --------------------------------------------------------------------------- quantization


def test_to_uint8_rounds_half_to_even_in_float32_and_clamps():
    halves = [(k + 0.5) / 255 for k in range(4)]  # exactly k + 0.5 after *255 in float32
    img = torch.tensor([[halves + [-0.3, 1.7]]] * 2, dtype=torch.float64)  # [2, 1, 6]
    assert to_uint8(img).tolist() == [[0, 2, 2, 4, 0, 255]] * 2  # squeezed to [H, W]


def test_to_uint8_layout_keeps_rgb_and_leaves_input_untouched():
    img = torch.zeros(1, 3, 4, 5)
    img[0, 0] = 1.0  # red
    img[0, 2] = 2.0  # blue, out of range
    before = img.clone()
    u8 = to_uint8(img)
    assert u8.shape == (4, 5, 3) and u8.dtype == np.uint8
    assert (u8[..., 0] == 255).all() and (u8[..., 1] == 0).all() and (u8[..., 2] == 255).all()
    assert torch.equal(img, before)
    assert np.array_equal(to_uint8(img[0].numpy()), u8)


def test_to_uint8_rejects_batches():
    with pytest.raises(ValueError, match="quantize_to_uint8"):
        to_uint8(torch.rand(2, 3, 8, 8))


def test_quantize_to_uint8_equals_to_uint8_per_image():
    torch.manual_seed(0)
    batch = torch.rand(3, 3, 9, 11) * 1.4 - 0.2
    q = quantize_to_uint8(batch)
    assert q.dtype == torch.uint8 and q.shape == batch.shape
    for i in range(3):
        assert np.array_equal(q[i].permute(1, 2, 0).numpy(), to_uint8(batch[i]))


# --------------------------------------------------------------------------- behaviour


def test_rgb_to_y_is_bt601_studio_range_on_rgb():
    colors = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    expected = np.array([[16.0, 235.0, 65.481 + 16.0, 24.966 + 16.0]]) / 255.0
    np.testing.assert_allclose(rgb_to_y(colors), expected, rtol=0, atol=1e-12)
    torch_y = batch_rgb_to_y(chw(torch.from_numpy(colors))[None])
    np.testing.assert_allclose(torch_y[0, 0].numpy(), expected, rtol=0, atol=1e-12)


def test_ssim_window_is_opencvs_gaussian():
    import cv2

    expected = cv2.getGaussianKernel(11, 1.5)[:, 0]
    np.testing.assert_allclose(gaussian_kernel_1d().numpy(), expected, rtol=0, atol=1e-16)


def test_crop_border():
    img = np.arange(30 * 40 * 3).reshape(30, 40, 3)
    assert crop_border(img, 0) is img
    assert np.array_equal(crop_border(img, 4), img[4:26, 4:36])
    with pytest.raises(ValueError, match="non-negative"):
        crop_border(img, -1)
    with pytest.raises(ValueError, match="leaves 10x20 pixels"):
        crop_border(img, 10)


def test_crop_ignores_the_border_numpy_and_torch():
    out, gt = random_pair(1)
    out_border = gt.copy()
    out_border[:4] = out[:4]  # differ only inside the 4-pixel border
    out_border[:, -4:] = out[:, -4:]
    cropped = image_metrics(out_border, gt, 4)
    full = image_metrics(out_border, gt, 0)
    assert cropped["psnr"] == math.inf and cropped["psnr_y"] == math.inf
    assert cropped["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert math.isfinite(full["psnr"]) and full["ssim"] < 1.0
    t = batch_image_metrics(chw(torch.from_numpy(out_border))[None], chw(torch.from_numpy(gt))[None], 4)
    assert t["psnr"][0] == math.inf and t["psnr_y"][0] == math.inf
    # crop=N equals crop=0 on images cropped by hand
    manual = image_metrics(np.ascontiguousarray(out[5:-5, 5:-5]), np.ascontiguousarray(gt[5:-5, 5:-5]), 0)
    for name, value in image_metrics(out, gt, 5).items():
        assert value == pytest.approx(manual[name], abs=1e-12)


def test_identical_images_give_inf_psnr_and_unit_ssim():
    _, gt = random_pair(2)
    ref = image_metrics(gt, gt.copy(), 4)
    t = batch_image_metrics(chw(torch.from_numpy(gt))[None], chw(torch.from_numpy(gt))[None], 4)
    for got in (ref, {k: v[0].item() for k, v in t.items()}):
        assert got["psnr"] == math.inf and got["psnr_y"] == math.inf
        assert got["ssim"] == pytest.approx(1.0, abs=1e-12)
        assert got["ssim_y"] == pytest.approx(1.0, abs=1e-12)


def test_numpy_and_torch_agree_on_random_images():
    out, gt = random_pair(3, shape=(33, 47, 3))
    ref = image_metrics(out, gt, 4)
    t = batch_image_metrics(chw(torch.from_numpy(out))[None], chw(torch.from_numpy(gt))[None], 4)
    for name in METRIC_NAMES:
        assert t[name][0].item() == pytest.approx(ref[name], abs=1e-10)


def test_shape_mismatch_is_reported():
    out, gt = random_pair(4)
    with pytest.raises(ValueError, match=r"same shape, got out \(40, 52, 3\) and gt \(40, 51, 3\)"):
        image_metrics(out, np.ascontiguousarray(gt[:, :51]), 4)
    tout, tgt = chw(torch.from_numpy(out))[None], chw(torch.from_numpy(gt))[None]
    with pytest.raises(ValueError, match=r"same shape, got out \(1, 3, 40, 52\) and gt \(1, 3, 40, 51\)"):
        batch_image_metrics(tout, tgt[..., :51], 4)


def test_bad_inputs_are_reported():
    out, gt = random_pair(5)
    with pytest.raises(TypeError, match="uint8 numpy image"):
        image_metrics(out.astype(np.float64), gt, 4)
    tgt = chw(torch.from_numpy(gt))[None]
    with pytest.raises(ValueError, match="8-bit values.*quantize_to_uint8"):
        batch_image_metrics(tgt.float() / 255, tgt, 4)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        batch_image_metrics(tgt[0], tgt[0], 4)
    with pytest.raises(ValueError, match="SSIM needs at least 11x11"):
        batch_image_metrics(tgt, tgt, 16)
