"""Paired LQ/GT image folders, read as the reference's `LQGTDataset` reads them.

- Files: every image under the folder (sub-folders included), sorted by path; LQ image i
  pairs with GT image i (the reference pairs by sorted order, not by name).
- Pixels: OpenCV decode (``IMREAD_UNCHANGED``), BGR -> RGB, ``float32 / 255``. Grayscale
  becomes RGB by repetition and RGBA drops its alpha channel (the reference keeps the first
  three channels); 16-bit images are scaled by 1/65535 instead.
- Batches: `SizeGroupedBatchSampler` puts only images of one size in a batch.

Errors name the file, the folder or the options key that points at it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from uir.common.errors import DataError, DatarootNotFoundError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# How many unpaired names a count-mismatch message shows.
SHOWN_NAMES = 5


@dataclass(frozen=True)
class ImagePair:
    """One test image: its output name (GT's relative path without extension, or LQ's), LQ, GT."""

    name: str
    lq: Path
    gt: Path | None


def is_image_file(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike, *, option: str) -> list[Path]:
    """Every image file under `folder` (recursively), sorted by path as the reference sorts them.

    `option` is the options key that names the folder (it appears in errors).
    """
    root = Path(folder)
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise DatarootNotFoundError(f"{option}: {root} {problem}")
    paths = [
        os.path.join(dirpath, name)
        for dirpath, _, names in os.walk(root)
        for name in names
        if is_image_file(name)
    ]
    if not paths:
        raise DataError(f"{option}: {root} holds no image file ({', '.join(IMAGE_EXTENSIONS)})")
    return [Path(p) for p in sorted(paths)]


def _stem(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix("")).replace(os.sep, "/")


def pair_folders(
    lq_dir: str | os.PathLike,
    gt_dir: str | os.PathLike | None,
    *,
    lq_option: str,
    gt_option: str,
    max_images: int | None = None,
) -> list[ImagePair]:
    """Pair the images of `lq_dir` and `gt_dir` (optional) in sorted order.

    Output names come from GT (from LQ without GT), as in the reference. A count mismatch
    lists both counts and the first names that have no partner.
    """
    lq = list_images(lq_dir, option=lq_option)
    if gt_dir is None:
        pairs = [ImagePair(_stem(p, Path(lq_dir)), p, None) for p in lq]
    else:
        gt = list_images(gt_dir, option=gt_option)
        if len(lq) != len(gt):
            lq_names = {_stem(p, Path(lq_dir)) for p in lq}
            gt_names = {_stem(p, Path(gt_dir)) for p in gt}
            only_lq = sorted(lq_names - gt_names)[:SHOWN_NAMES]
            only_gt = sorted(gt_names - lq_names)[:SHOWN_NAMES]
            raise DataError(
                f"{lq_option} and {gt_option} hold different numbers of images: {len(lq)} LQ in {lq_dir}, "
                f"{len(gt)} GT in {gt_dir}; LQ names without a GT of the same name: {only_lq or 'none'}; "
                f"GT names without an LQ: {only_gt or 'none'}"
            )
        pairs = [ImagePair(_stem(g, Path(gt_dir)), q, g) for q, g in zip(lq, gt)]
        differing = next(((q, g) for q, g in zip(lq, gt) if _stem(q, Path(lq_dir)) != _stem(g, Path(gt_dir))), None)
        if differing is not None:
            logger.warning("%s and %s are paired in sorted order (as the reference does), but their names differ: "
                           "first LQ %s with GT %s", lq_option, gt_option, differing[0], differing[1])
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:SHOWN_NAMES]
        raise DataError(
            f"{gt_option if gt_dir is not None else lq_option}: several images share the name(s) {dup} "
            f"(different extensions); restored images are named after them, so rename them"
        )
    return pairs[:max_images] if max_images is not None else pairs


def check_complete(path: str | os.PathLike) -> None:
    """Refuse a damaged or truncated image file. OpenCV decodes a truncated JPEG into a half-grey
    image with only a warning on stderr; Pillow's full decode raises instead."""
    try:
        with Image.open(path) as im:
            im.load()
    except UnidentifiedImageError:
        return  # a format Pillow does not know: OpenCV alone decides
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: the file is damaged or truncated ({exc})") from exc


def read_image_uint8(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB ``[H, W, 3]`` (uint8, or uint16 for 16-bit files), decoded by OpenCV as
    the reference decodes it, after checking that the file is complete."""
    check_complete(path)
    img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"cannot read image {path}: the file is unreadable or not an image OpenCV decodes")
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: unsupported pixel type {img.dtype}; use 8- or 16-bit images")
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if channels in (1, 2):  # gray, gray + alpha
        return np.repeat(img[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(img[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as float32 RGB ``[H, W, 3]`` in [0, 1] (``uint8 / 255`` as the reference)."""
    img = read_image_uint8(path)
    scale = np.float32(65535.0 if img.dtype == np.uint16 else 255.0)
    return img.astype(np.float32) / scale


def to_tensor(img: np.ndarray) -> Tensor:
    """``[H, W, 3]`` -> contiguous ``[3, H, W]`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image file, from its header when Pillow can read it."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            return height, width
    except Exception:  # Pillow missing or unable: decode instead
        img = read_image_uint8(path)
        return img.shape[0], img.shape[1]


class PairedImageDataset(Dataset):
    """Item i: ``{"index": i, "lq": [3,H,W], "gt": [3,H,W] or None}``, float32 in [0, 1].

    With ``errors="return"`` an unreadable pair gives ``{"index": i, "error": message}``
    instead of raising, so that a DataLoader worker's failure reaches the main process as
    a plain message (`collate_pairs` passes it on as the batch's ``"error"``).
    """

    def __init__(self, pairs: Sequence[ImagePair], *, errors: str = "raise"):
        if errors not in ("raise", "return"):
            raise ValueError(f"errors: expected 'raise' or 'return', got {errors!r}")
        self.pairs = list(pairs)
        self.errors = errors

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        if self.errors == "raise":
            return self._load(index)
        try:
            return self._load(index)
        except DataError as exc:
            return {"index": index, "error": str(exc)}

    def _load(self, index: int) -> dict:
        pair = self.pairs[index]
        lq = read_image(pair.lq)
        gt = None
        if pair.gt is not None:
            gt = read_image(pair.gt)
            if gt.shape != lq.shape:
                raise DataError(
                    f"{pair.lq} ({lq.shape[0]}x{lq.shape[1]}) and its GT {pair.gt} ({gt.shape[0]}x{gt.shape[1]}) "
                    f"differ in size; LQ and GT must have the same size"
                )
            gt = to_tensor(gt)
        return {"index": index, "lq": to_tensor(lq), "gt": gt}

    def sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of every LQ image (from file headers)."""
        return [image_size(p.lq) for p in self.pairs]


def group_by_size(sizes: Sequence[tuple[int, int]], batch_size: int, indices: Sequence[int] | None = None) -> list[list[int]]:
    """Batches of at most `batch_size` indices whose images share one size.

    Sizes are visited in order of first appearance and indices keep their order, so a
    folder of equal-size images is batched in sorted order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict[tuple[int, int], list[int]] = {}
    for i in (range(len(sizes)) if indices is None else indices):
        groups.setdefault(tuple(sizes[i]), []).append(i)
    return [group[k : k + batch_size] for group in groups.values() for k in range(0, len(group), batch_size)]


class SizeGroupedBatchSampler(Sampler[list[int]]):
    """Yields the batches of `group_by_size` (fixed order, no shuffling)."""

    def __init__(self, sizes: Sequence[tuple[int, int]], batch_size: int, indices: Sequence[int] | None = None):
        self.batches = group_by_size(sizes, batch_size, indices)

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(b) for b in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


def collate_pairs(items: list[dict]) -> dict:
    """Stack a batch of equal-size items: ``index`` [B] long, ``lq`` [B,3,H,W], ``gt`` [B,3,H,W] or None.

    If an item carries an ``"error"``, the batch is ``{"error": message}``.
    """
    for item in items:
        if item.get("error"):
            return {"error": item["error"]}
    has_gt = [item["gt"] is not None for item in items]
    if any(has_gt) and not all(has_gt):
        raise DataError("a batch mixes images with and without GT")
    return {
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
        "lq": torch.stack([item["lq"] for item in items]),
        "gt": torch.stack([item["gt"] for item in items]) if all(has_gt) else None,
    }


def make_loader(
    dataset: PairedImageDataset,
    batch_sampler: Sampler[list[int]],
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over `batch_sampler` with `num_workers` worker processes."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate_pairs,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
