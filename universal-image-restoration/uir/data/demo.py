"""A small demo data set of real photos with synthetic degradations.

The published DA-CLIP test set cannot be downloaded, so the demo builds paired LQ/GT images
from the photographs that scikit-image ships inside its wheel (no network access), using the
degradations of :mod:`uir.data.degradations`. Layout (the one the reference's ``MD`` and
``LQGT`` data sets read; LQ and GT hold identical file names, paired in sorted order)::

    ROOT/manifest.json
    ROOT/<split>/<task>/{LQ,GT}/NNN_<photo>.png     split in {train, test}

Train and test use different photos (``TRAIN_PHOTOS`` / ``TEST_PHOTOS``). Test images are
``test_size`` crops of the photo downscaled to a short side of ``2 * test_size``; training
patches are ``train_size`` crops at a random scale between "short side = train_size" and
the photo's full resolution (half of it for JPEG sources, so their block artefacts vanish).
A crop is redrawn (up to ``CROP_TRIES`` times) when its grey-level std is below
``MIN_CROP_STD``, to avoid flat background. ``train_dark_fraction`` > 0 darkens that fraction of
the training GT crops of every task but low-light (exposure factor log-uniform in
``DARK_SCALE``), so that a network without a degradation context sees dark photos that are not
low-light inputs (the demo network took the dark noisy coffee cup for one). Every image has its own generator seeded by
(seed, split, task, index), so the output is byte-identical for a seed and one task's images
do not depend on which other tasks are built.
"""
from __future__ import annotations

import json
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from .degradations import DEGRADATIONS, PARAM_RANGES, sample_params

__all__ = [
    "DEMO_TASKS",
    "DEGRADATIONS",
    "PHOTOS",
    "TEST_PHOTOS",
    "TRAIN_PHOTOS",
    "load_photo",
    "make_demo_dataset",
    "to_uint8",
]

# The DA-CLIP task names that have a synthetic degradation here, in the reference's order.
DEMO_TASKS: tuple[str, ...] = (
    "motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy", "rainy",
)

SPLIT_IDS = {"train": 0, "test": 1}
MIN_CROP_STD = 0.05
CROP_TRIES = 10
DARK_SCALE = (0.2, 0.7)
UNDARKENED_TASKS = ("low-light",)  # its GT is the well-exposed photo by definition
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Photo:
    """A photo bundled with scikit-image: ``load`` returns uint8 (H, W) or (H, W, 3)."""

    name: str
    load: Callable[[], np.ndarray]
    max_scale: float = 1.0  # largest resize factor for crops (0.5 for JPEG-compressed sources)


def _skimage(name: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return image[index] if index is not None else image

    return load


# Only photos stored in the scikit-image wheel itself (no pooch download). ``cat`` is the same
# image as ``chelsea`` and ``clock`` is already motion-blurred, so neither is used.
PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in (
        # test
        Photo("astronaut", _skimage("astronaut")),
        Photo("chelsea", _skimage("chelsea")),
        Photo("coffee", _skimage("coffee")),
        # train
        Photo("rocket", _skimage("rocket"), max_scale=0.5),
        Photo("motorcycle_left", _skimage("stereo_motorcycle", 0)),
        Photo("motorcycle_right", _skimage("stereo_motorcycle", 1)),
        Photo("camera", _skimage("camera")),
        Photo("hubble_deep_field", _skimage("hubble_deep_field"), max_scale=0.5),
        Photo("immunohistochemistry", _skimage("immunohistochemistry")),
        Photo("retina", _skimage("retina"), max_scale=0.5),
        Photo("brick", _skimage("brick")),
        Photo("grass", _skimage("grass")),
        Photo("gravel", _skimage("gravel")),
        Photo("coins", _skimage("coins")),
        Photo("moon", _skimage("moon")),
    )
}
TEST_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee")
TRAIN_PHOTOS: tuple[str, ...] = tuple(n for n in PHOTOS if n not in TEST_PHOTOS)


def load_photo(name: str) -> np.ndarray:
    """The photo ``name`` as float32 RGB in [0, 1] (grey photos are repeated over 3 channels)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown demo photo {name!r}; valid: {list(PHOTOS)}")
    image = np.asarray(PHOTOS[name].load())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8 or image.shape[2] != 3:
        raise ValueError(f"photo {name!r}: expected uint8 RGB, got {image.dtype} {image.shape}")
    return image.astype(np.float32) / np.float32(255.0)


MAX_SIZE = 2048

def make_demo_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    tasks: Iterable[str] = DEMO_TASKS,
    test_size: int = 128,
    n_test_per_task: int = 3,
    n_train_per_task: int = 48,
    train_size: int = 128,
    train_dark_fraction: float = 0.0,
    overwrite: bool = False,
    workers: int = 1,
) -> Path:
    """Write the demo set under ``out_dir`` and return its path.

    Refuses a non-empty ``out_dir`` unless ``overwrite``; then only what this function writes
    (``train/``, ``test/``, ``manifest.json``) is removed first. ``workers`` > 1 writes the
    (split, task) folders in that many processes; the files are the same.
    """
    tasks = tuple(tasks)
    _check_args(seed, tasks, test_size, n_test_per_task, n_train_per_task, train_size)
    if not 0.0 <= train_dark_fraction <= 1.0:
        raise ValueError(f"train_dark_fraction must lie in [0, 1], got {train_dark_fraction!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    root = Path(out_dir)
    _prepare_out_dir(root, overwrite)

    splits = {
        "test": (TEST_PHOTOS, n_test_per_task, test_size, 0.0),
        "train": (TRAIN_PHOTOS, n_train_per_task, train_size, train_dark_fraction),
    }
    photos = {name: load_photo(name) for names, count, _, _ in splits.values() if count
              for name in names}
    jobs = [
        _TaskJob(root, split, task, {n: photos[n] for n in names} if count else {}, count, size, seed,
                 0.0 if task in UNDARKENED_TASKS else dark_fraction)
        for split, (names, count, size, dark_fraction) in splits.items() for task in tasks
    ]
    if workers > 1 and len(jobs) > 1:  # every image has its own generator: same bytes in any order
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            written = list(pool.map(_write_task, jobs))
    else:
        written = [_write_task(job) for job in jobs]
    records: dict[str, dict[str, list[dict]]] = {split: {} for split in splits}
    for job, task_records in zip(jobs, written):
        records[job.split][job.task] = task_records

    manifest = {
        "generator": "uir.data.demo",
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "tasks": list(tasks),
        "sizes": {"test": test_size, "train": train_size},
        "train_dark_fraction": train_dark_fraction,
        "photos": {split: list(names) for split, (names, _, _, _) in splits.items()},
        "source": "skimage.data photos bundled with scikit-image (no downloads)",
        "param_ranges": {task: _jsonable(PARAM_RANGES[task]) for task in tasks},
        "images": records,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return root


def _check_args(seed, tasks, test_size, n_test, n_train, train_size) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not tasks:
        raise ValueError(f"tasks is empty; choose from {list(DEMO_TASKS)}")
    unknown = [t for t in tasks if t not in DEMO_TASKS]
    if unknown:
        raise ValueError(f"no synthetic degradation for {unknown}; demo tasks: {list(DEMO_TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks has duplicates: {list(tasks)}")
    # Crops come from photos scaled to twice their size: beyond MAX_SIZE that is gigabytes per photo.
    for key, value, low, high in (("test_size", test_size, 16, MAX_SIZE), ("train_size", train_size, 16, MAX_SIZE),
                                  ("n_test_per_task", n_test, 1, None), ("n_train_per_task", n_train, 0, None)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        if high is not None and value > high:
            raise ValueError(f"{key} must be <= {high} (crops of photos scaled to twice that size), got {value!r}")


def _prepare_out_dir(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"output path {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"output folder {root} is not empty; pass overwrite=True (CLI: --overwrite) "
                f"to replace the demo set in it"
            )
        for split in SPLIT_IDS:
            if (root / split).is_dir():
                shutil.rmtree(root / split)
            elif (root / split).exists():
                (root / split).unlink()
        (root / "manifest.json").unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class _TaskJob:
    """The images of one task in one split: what one worker process writes."""

    root: Path
    split: str
    task: str
    photos: dict[str, np.ndarray]  # the split's photos, in the order images cycle through them
    count: int
    size: int
    seed: int
    dark_fraction: float


def _write_task(job: _TaskJob) -> list[dict]:
    names = list(job.photos)
    return [
        _write_pair(job.root, job.split, job.task, i, names[i % len(names)], job.photos, job.size,
                    job.seed, job.dark_fraction)
        for i in range(job.count)
    ]


def _image_rng(seed: int, split: str, task: str, index: int) -> np.random.Generator:
    """Generator of one image, independent of the other tasks and images."""
    return np.random.default_rng([seed, SPLIT_IDS[split], zlib.crc32(task.encode()), index])


def _write_pair(root, split, task, index, photo_name, photos, size, seed, dark_fraction) -> dict:
    rng = _image_rng(seed, split, task, index)
    photo = photos[photo_name]
    max_scale = PHOTOS[photo_name].max_scale
    if split == "test":
        gt, crop = _crop(photo, size, rng, _fixed_scale(photo, size, max_scale))
    else:
        gt, crop = _crop(photo, size, rng, lambda: _random_scale(photo, size, max_scale, rng))
    if dark_fraction > 0:  # no draw otherwise: the data set of fraction 0 stays byte-identical
        darken_it, exposure = rng.uniform() < dark_fraction, _log_uniform(DARK_SCALE, rng)
        crop["exposure"] = exposure if darken_it else 1.0
        gt = gt * np.float32(crop["exposure"])
    gt = _quantise(gt)  # the clean image is what is stored: degrade the stored pixels
    params = sample_params(task, rng)
    lq = DEGRADATIONS[task](gt, rng, **params)
    name = f"{index:03d}_{photo_name}.png"
    for kind, image in (("GT", gt), ("LQ", lq)):
        folder = root / split / task / kind
        folder.mkdir(parents=True, exist_ok=True)
        _write_png(folder / name, image)
    return {"name": name, "photo": photo_name, **crop, "params": params}


def _min_scale(photo: np.ndarray, size: int) -> float:
    return size / min(photo.shape[:2])


def _fixed_scale(photo: np.ndarray, size: int, max_scale: float) -> Callable[[], float]:
    """Test crops: short side 2 * size where the photo allows it."""
    scale = max(min(2.0 * _min_scale(photo, size), max_scale), _min_scale(photo, size))
    return lambda: scale


def _random_scale(photo: np.ndarray, size: int, max_scale: float, rng) -> float:
    """Training crops: log-uniform between short side == size and ``max_scale``."""
    low = _min_scale(photo, size)
    return _log_uniform((low, max(max_scale, low)), rng)


def _log_uniform(bounds: tuple[float, float], rng) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _crop(photo, size, rng, next_scale) -> tuple[np.ndarray, dict]:
    """Random ``size`` crop at ``next_scale()``; the first with enough texture, else the best."""
    best = None
    for _ in range(CROP_TRIES):
        scale = next_scale()
        h, w = photo.shape[:2]
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        resized = photo if (new_w, new_h) == (w, h) else cv2.resize(
            photo, (new_w, new_h), interpolation=cv2.INTER_AREA)
        top = int(rng.integers(0, new_h - size + 1))
        left = int(rng.integers(0, new_w - size + 1))
        crop = resized[top:top + size, left:left + size]
        std = float(crop.mean(axis=2).std())
        if best is None or std > best[0]:
            info = {"scale": scale, "resized_hw": [new_h, new_w], "top": top, "left": left}
            best = (std, np.ascontiguousarray(crop), info)
        if std >= MIN_CROP_STD:
            break
    return best[1], best[2]


def _quantise(image: np.ndarray) -> np.ndarray:
    return to_uint8(image).astype(np.float32) / np.float32(255.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 with clipping and rounding to nearest."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", to_uint8(image)[:, :, ::-1])
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode {path}")
    path.write_bytes(buf.tobytes())


def _jsonable(ranges: dict[str, object]) -> dict[str, object]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in ranges.items()}
