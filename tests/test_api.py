"""The Python API (`uir.ImageRestorer`): the bytes test.py writes, any size and batch, numpy and
tensors, sweeps, and errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import REPO
from uir import ImageRestorer, NonFiniteResult
from uir.data.paired import read_image_uint8
from uir.evaluation import run
from uir.options import load_options
from workspace import PLAIN_NET, make_workspace

DEMO = REPO / "options" / "demo.yml"


@pytest.fixture(scope="module")
def demo():
    return ImageRestorer.from_file(DEMO, [("device", "cpu"), ("batch_size", 1)])  # test.py below: batch 1 too


def test_an_image_file_restored_from_python_has_test_py_s_bytes(demo, tmp_path):
    options = load_options(DEMO, [("tasks", ["noisy"]), ("max_images", 2), ("results_root", str(tmp_path)),
                                  ("sweep", {"runs": [{"sampler": "mrsampler", "nfe": 5}]}), ("device", "cpu"),
                                  ("batch_size", 1), ("lpips", False), ("fid", False)])
    result = run(options, progress=False)
    lq = [read_image_uint8(p) for p in sorted((REPO / "demo" / "test" / "noisy" / "LQ").iterdir())[:2]]
    restored = demo(lq, sampler="mrsampler", nfe=5)  # image i seeded with seed + i, as in test.py
    for i, name in enumerate(sorted(p.stem for p in (REPO / "demo" / "test" / "noisy" / "GT").iterdir())[:2]):
        saved = read_image_uint8(result.run_dir / "noisy" / "mrsampler_nfe5" / f"{name}.png")
        assert np.array_equal(restored[i], saved), name
    alone = demo(lq[1], sampler="mrsampler", nfe=5, seeds=[1])  # the second image alone, with its seed
    assert np.array_equal(alone, restored[1])


def test_forms_sizes_and_batches(demo):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((32, 48), (40, 40), (32, 48))]
    out = demo(images, sampler="mrsampler", nfe=2)
    assert [o.shape for o in out] == [(32, 48, 3), (40, 40, 3), (32, 48, 3)] and all(o.dtype == np.uint8 for o in out)
    batch = demo(np.stack([images[0], images[2]]), sampler="mrsampler", nfe=2)
    assert batch.shape == (2, 32, 48, 3) and np.array_equal(batch[0], out[0])
    as_tensor = demo(torch.from_numpy(images[1]).permute(2, 0, 1).float() / 255, sampler="mrsampler", nfe=2, seeds=[1])
    assert as_tensor.dtype == torch.float32 and as_tensor.shape == (3, 40, 40) and 0 <= float(as_tensor.min())
    assert np.abs(np.round(as_tensor.permute(1, 2, 0).numpy() * 255) - out[1]).max() <= 1
    swept = demo.sweep(images[:1], [{"label": "MRS-1", "sampler": "mrsampler", "nfe": [2, 3], "set": {"order": 1}},
                                    {"sampler": "posterior", "nfe": 2}])
    assert list(swept) == [("MRS-1", 2), ("MRS-1", 3), ("posterior", 2)]


def test_bad_input_and_non_finite_results_are_errors(demo, tmp_path):
    with pytest.raises(ValueError, match=r"expected a numpy image \[H, W, 3\]"):
        demo(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="seeds: 1 given for 2 image"):
        demo([np.zeros((16, 16, 3), np.uint8)] * 2, seeds=[0])
    with pytest.raises(ValueError, match=r"sampler.ordr: unknown key"):
        demo(np.zeros((16, 16, 3), np.uint8), ordr=2)
    ws = make_workspace(tmp_path)
    state = torch.load(ws / "plain.pth", weights_only=True)
    torch.save({k: v * 1e30 if k == "final_conv.weight" else v for k, v in state.items()}, tmp_path / "huge.pth")
    broken = ImageRestorer.create(network_G={"which_model_G": "ConditionalUNet", "setting": PLAIN_NET},
                                  path={"pretrain_model_G": str(tmp_path / "huge.pth")}, device="cpu",
                                  sampler={"fit_target": "noise"})
    with pytest.raises(NonFiniteResult, match="image 0: non-finite output"):
        broken(np.zeros((16, 16, 3), np.uint8), sampler="mrsampler", nfe=3)
