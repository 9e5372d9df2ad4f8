"""Paired LQ/GT folders: discovery, pairing, pixel reading, size-grouped batches."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from uir.data.paired import (
    DataError,
    DatarootNotFoundError,
    PairedImageDataset,
    SizeGroupedBatchSampler,
    collate_pairs,
    group_by_size,
    image_size,
    list_images,
    make_loader,
    pair_folders,
    read_image,
    read_image_uint8,
)


def reference_read(path) -> np.ndarray:
    """The reference's read_img + BGR->RGB for a 3- or 4-channel 8-bit file."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    return img[:, :, :3][:, :, [2, 1, 0]]


def rand_image(rng, h, w, c=3, dtype=np.uint8):
    high = 256 if dtype == np.uint8 else 65536
    shape = (h, w) if c == 1 else (h, w, c)
    return rng.integers(0, high, shape, dtype=dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_rgb_reading_matches_reference_exactly(tmp_path, rng):
    bgr = rand_image(rng, 12, 17)
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    img = read_image(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (12, 17, 3)
    np.testing.assert_array_equal(img, reference_read(tmp_path / "a.png"))
    np.testing.assert_array_equal(read_image_uint8(tmp_path / "a.png"), bgr[:, :, ::-1])


def test_rgba_drops_alpha_and_gray_becomes_rgb(tmp_path, rng):
    bgra = rand_image(rng, 9, 11, 4)
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), reference_read(tmp_path / "rgba.png"))
    gray = rand_image(rng, 9, 11, 1)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    img = read_image(tmp_path / "gray.png")
    assert img.shape == (9, 11, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], gray.astype(np.float32) / 255.0)


def test_sixteen_bit_images_scale_to_unit_range(tmp_path, rng):
    img16 = rand_image(rng, 8, 8, 3, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), img16)
    img = read_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(img, img16[:, :, ::-1].astype(np.float32) / np.float32(65535))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"])
def test_common_formats_are_found_and_read(tmp_path, rng, ext):
    bgr = rand_image(rng, 16, 20)
    path = tmp_path / f"img{ext.upper() if ext == '.jpg' else ext}"
    assert cv2.imwrite(str(path), bgr)
    assert list_images(tmp_path, option="x") == [path]
    np.testing.assert_array_equal(read_image(path), cv2.imread(str(path))[:, :, ::-1].astype(np.float32) / 255.0)
    assert image_size(path) == (16, 20)


def _write_pairs(root, lq_names, gt_names, rng, size=(8, 8)):
    (root / "LQ").mkdir(parents=True)
    (root / "GT").mkdir(parents=True)
    for n in lq_names:
        cv2.imwrite(str(root / "LQ" / n), rand_image(rng, *size))
    for n in gt_names:
        cv2.imwrite(str(root / "GT" / n), rand_image(rng, *size))


def test_pairs_follow_sorted_order_and_take_gt_names(tmp_path, rng):
    _write_pairs(tmp_path, ["b_lq.png", "a_lq.png", "c_lq.jpg"], ["c.png", "a.png", "b.png"], rng)
    pairs = pair_folders(tmp_path / "LQ", tmp_path / "GT", lq_option="lq", gt_option="gt")
    assert [p.name for p in pairs] == ["a", "b", "c"]
    assert [p.lq.name for p in pairs] == ["a_lq.png", "b_lq.png", "c_lq.jpg"]
    assert [p.gt.name for p in pairs] == ["a.png", "b.png", "c.png"]
    assert [p.name for p in pair_folders(tmp_path / "LQ", tmp_path / "GT", lq_option="lq", gt_option="gt",
                                         max_images=2)] == ["a", "b"]


def test_without_gt_names_come_from_lq(tmp_path, rng):
    _write_pairs(tmp_path, ["x.png", "y.png"], [], rng)
    pairs = pair_folders(tmp_path / "LQ", None, lq_option="lq", gt_option="gt")
    assert [(p.name, p.gt) for p in pairs] == [("x", None), ("y", None)]
    item = PairedImageDataset(pairs)[0]
    assert item["gt"] is None and item["lq"].shape == (3, 8, 8)


def test_subfolders_are_walked_and_keep_their_path_in_the_name(tmp_path, rng):
    _write_pairs(tmp_path, [], [], rng)
    for sub in ("LQ", "GT"):
        (tmp_path / sub / "s").mkdir()
        cv2.imwrite(str(tmp_path / sub / "s" / "img.png"), rand_image(rng, 8, 8))
        cv2.imwrite(str(tmp_path / sub / "top.png"), rand_image(rng, 8, 8))
    pairs = pair_folders(tmp_path / "LQ", tmp_path / "GT", lq_option="lq", gt_option="gt")
    assert [p.name for p in pairs] == ["s/img", "top"]


def test_count_mismatch_names_both_counts_and_unpaired_files(tmp_path, rng):
    _write_pairs(tmp_path, ["a.png", "b.png", "c.png"], ["a.png", "b.png"], rng)
    with pytest.raises(DataError) as err:
        pair_folders(tmp_path / "LQ", tmp_path / "GT", lq_option="datasets.test1.dataroot_LQ",
                     gt_option="datasets.test1.dataroot_GT")
    message = str(err.value)
    assert "3 LQ" in message and "2 GT" in message and "'c'" in message
    assert "datasets.test1.dataroot_LQ" in message and "datasets.test1.dataroot_GT" in message


def test_missing_or_empty_folders_name_the_option(tmp_path):
    with pytest.raises(DatarootNotFoundError, match=r"datasets\.test1\.dataroot_GT: .*nowhere does not exist"):
        list_images(tmp_path / "nowhere", option="datasets.test1.dataroot_GT")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match="holds no image file"):
        list_images(tmp_path / "empty", option="opt")


def test_unreadable_image_names_the_file(tmp_path, rng):
    _write_pairs(tmp_path, ["a.png"], ["a.png"], rng)
    (tmp_path / "LQ" / "a.png").write_bytes(b"not a png")
    pairs = pair_folders(tmp_path / "LQ", tmp_path / "GT", lq_option="lq", gt_option="gt")
    with pytest.raises(DataError, match=r"cannot read image .*a\.png"):
        PairedImageDataset(pairs)[0]
    item = PairedImageDataset(pairs, errors="return")[0]
    assert "a.png" in item["error"]
    assert "a.png" in collate_pairs([item])["error"]


def test_lq_and_gt_of_different_sizes_are_an_error(tmp_path, rng):
    _write_pairs(tmp_path, ["a.png"], [], rng, size=(8, 8))
    cv2.imwrite(str(tmp_path / "GT" / "a.png"), rand_image(rng, 8, 9))
    pairs = pair_folders(tmp_path / "LQ", tmp_path / "GT", lq_option="lq", gt_option="gt")
    with pytest.raises(DataError, match="differ in size"):
        PairedImageDataset(pairs)[0]


def test_group_by_size_batches_equal_sizes_in_order():
    sizes = [(24, 32), (32, 32), (24, 32), (24, 32), (32, 32), (24, 32)]
    batches = group_by_size(sizes, 2)
    assert batches == [[0, 2], [3, 5], [1, 4]]
    assert group_by_size(sizes, 3, indices=[5, 1, 3, 2]) == [[5, 3, 2], [1]]
    assert sorted(i for b in group_by_size(sizes, 4) for i in b) == list(range(6))
    with pytest.raises(ValueError):
        group_by_size(sizes, 0)


def test_loader_with_workers_gives_the_same_batches(tmp_path, rng):
    (tmp_path / "LQ").mkdir()
    (tmp_path / "GT").mkdir()
    for i, (h, w) in enumerate([(8, 8), (8, 12), (8, 8), (8, 12), (8, 8)]):
        cv2.imwrite(str(tmp_path / "LQ" / f"{i}.png"), rand_image(rng, h, w))
        cv2.imwrite(str(tmp_path / "GT" / f"{i}.png"), rand_image(rng, h, w))
    pairs = pair_folders(tmp_path / "LQ", tmp_path / "GT", lq_option="lq", gt_option="gt")
    dataset = PairedImageDataset(pairs)
    sizes = dataset.sizes()
    single = list(make_loader(dataset, SizeGroupedBatchSampler(sizes, 2), num_workers=0))
    workers = list(make_loader(dataset, SizeGroupedBatchSampler(sizes, 2), num_workers=2))
    assert [b["index"].tolist() for b in single] == [[0, 2], [4], [1, 3]]
    for a, b in zip(single, workers):
        assert torch.equal(a["index"], b["index"])
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"])
        assert a["lq"].dtype == torch.float32 and a["lq"].shape[1] == 3
    first = dataset[0]
    np.testing.assert_array_equal(first["lq"].permute(1, 2, 0).numpy(), reference_read(pairs[0].lq))
