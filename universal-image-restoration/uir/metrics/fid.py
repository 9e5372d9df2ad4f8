"""FID as the reference computes it, from features extracted while a run goes.

The reference calls pytorch-fid's ``calculate_fid_given_paths([restored_dir, gt_dir],
batch_size=1, device, dims=2048)`` once per task: every image file of each folder is read with
PIL (``convert("RGB")``, ``ToTensor``: uint8 / 255 in float32), pytorch-fid's ``InceptionV3``
resizes it bilinearly to 299x299 and gives its 2048 pool3 features, and the Fréchet distance of
the two Gaussians (mean and ``np.cov`` of the features, in float64) is
``calculate_frechet_distance``. This module uses that network and that distance unchanged; it
only feeds the network differently: the run's 8-bit outputs (the bytes of the PNGs it writes),
batched by size, on the run's device, so no second pass over the disk is needed.

- `FidInception`: the network (weights from the torch hub cache, downloaded as pytorch-fid
  does, or a named file) and pool3 features of uint8 batches or of image files.
- `FidStatistics`, `frechet_distance`: mean/covariance and the distance (`FidScore`).
- `FidAccumulator`: restored features per sweep point by image index (mergeable across sessions
  and ranks), GT statistics once per task.

With fewer images than 2048 the covariances are singular. pytorch-fid's function then takes
the matrix square root of their product anyway, retries with 1e-6 added to both diagonals when
that is not finite, and raises when it has a large imaginary part; this module calls that same
function, keeps its printed retry note in `FidScore.note`, turns the raise into an empty score
with a note, and counts the images used in `FidScore.images`. With fewer than 2 images the
covariance is undefined (pytorch-fid's square root then never finishes); the score is empty.
"""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as TF
from PIL import Image
from pytorch_fid import inception as fid_inception
from pytorch_fid.fid_score import IMAGE_EXTENSIONS, ImagePathDataset, calculate_frechet_distance
from pytorch_fid.inception import InceptionV3

from uir.metrics.registry import MetricUnavailable
from uir.metrics.weights import BadWeightsFile, HubWeights, WeightsNotFound

FID_DIMS = 2048  # pool3, as the reference asks
FID_WEIGHTS = HubWeights(fid_inception.FID_WEIGHTS_URL, "FID Inception weights", option="fid_weights", skip="--no-fid")
FID_WEIGHTS_FILE = FID_WEIGHTS.file_name
MIN_IMAGES = 2  # np.cov of one sample is undefined


class FidUnavailable(MetricUnavailable):
    """FID cannot be computed here (weights missing or unusable)."""


class FidWeightsMissing(FidUnavailable):
    """The FID Inception weights are not cached, not named, and could not be downloaded."""


class FidWeightsUnusable(FidUnavailable, BadWeightsFile):
    """The Inception weights file named by `fid_weights`, or the one in the hub cache, cannot be
    used: a `UserError` that stops the run (never an empty column)."""


def fid_unavailable_reason() -> str:
    """The message for a run whose FID weights are missing (file name, URL, folder)."""
    return f"FID unavailable: {FID_WEIGHTS.missing_message()}"


@contextlib.contextmanager
def _inception_weights(state: dict[str, torch.Tensor]) -> Iterator[None]:
    """pytorch-fid builds its Inception and fetches the weights from their URL in one call; for
    the duration of that call, its URL loader hands over `state` instead."""
    original = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        yield
    finally:
        fid_inception.load_state_dict_from_url = original


def build_fid_inception(state: dict[str, torch.Tensor], weights_file: str | os.PathLike | None = None) -> InceptionV3:
    """pytorch-fid's pool3 ``InceptionV3`` holding `state` (strictly loaded), in eval mode; the
    weights read from `weights_file` (None: the hub cache) must fit (`FidWeightsUnusable`)."""
    with _inception_weights(state):
        try:
            network = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]])
        except (RuntimeError, TypeError, AttributeError) as exc:
            problem = f"does not fit the FID Inception: {' '.join(str(exc).split())[:300]}"
            raise FidWeightsUnusable(f"FID: {FID_WEIGHTS.unusable(weights_file)(problem)}") from exc
    return network.eval().requires_grad_(False)


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The files pytorch-fid reads from `folder`: lower-case image extensions, sorted."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"FID: image folder {path} does not exist")
    return sorted(file for ext in IMAGE_EXTENSIONS for file in path.glob(f"*.{ext}"))


def _check_uint8_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, torch.Tensor) else ""
        raise ValueError(f"FID: expected uint8 images [B, 3, H, W] (RGB), got {dtype} {shape}")


class FidInception:
    """pytorch-fid's Inception on one device: pool3 features of [0, 1] float or uint8 images."""

    def __init__(self, network: InceptionV3, device: torch.device):
        self.network = network
        self.device = device

    @classmethod
    def load(cls, device: torch.device | str, weights_file: str | os.PathLike | None = None) -> "FidInception":
        """From `weights_file`, the hub cache or a download; raises `FidWeightsMissing` when the
        file is missing and cannot be downloaded, `FidWeightsUnusable` (a `UserError`) when the
        named or cached file cannot be used."""
        try:
            state = FID_WEIGHTS.state_dict(weights_file)
        except WeightsNotFound as exc:
            raise FidWeightsMissing(f"FID unavailable: {exc}") from exc
        except BadWeightsFile as exc:
            raise FidWeightsUnusable(f"FID: {exc}") from exc
        device = torch.device(device)
        return cls(build_fid_inception(state, weights_file).to(device), device)

    @classmethod
    def create(cls, device: torch.device | str, weights_file: str | os.PathLike | None = None) -> "FidInception | None":
        """Like `load`, but None when the weights are missing and cannot be downloaded (the
        message is `fid_unavailable_reason()`); an unusable file still raises."""
        try:
            return cls.load(device, weights_file)
        except FidWeightsMissing:
            return None

    @torch.no_grad()
    def features01(self, images01: torch.Tensor) -> np.ndarray:
        """pool3 features ``[B, 2048]`` float32 of float images in [0, 1], as pytorch-fid's
        ``get_activations`` computes them (autocast off: the features are float32)."""
        x = images01.to(self.device, torch.float32)
        with torch.autocast(self.device.type, enabled=False):
            pred = self.network(x)[0]
        return pred.reshape(pred.shape[0], -1).cpu().numpy()

    def features(self, images: torch.Tensor) -> np.ndarray:
        """pool3 features of uint8 RGB images ``[B, 3, H, W]`` on any device: the bytes of the
        PNGs a run writes, converted like ``ToTensor`` (float32, then / 255)."""
        _check_uint8_batch(images)
        return self.features01(images.to(self.device).to(torch.float32).div(255))

    def features_of_files(self, files: Sequence[str | os.PathLike], batch_size: int = 16) -> np.ndarray:
        """pool3 features of image files read as pytorch-fid reads them, equal sizes batched
        (at most `batch_size` images in memory); rows in the order of `files`."""
        dataset = ImagePathDataset([str(f) for f in files], transforms=TF.ToTensor())
        rows = np.empty((len(dataset), FID_DIMS), dtype=np.float32)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, path in enumerate(dataset.files):
            with Image.open(path) as image:  # reads the header only
                by_size.setdefault(image.size, []).append(i)
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                rows[chunk] = self.features01(torch.stack([dataset[i] for i in chunk]))
        return rows


@dataclass(frozen=True)
class FidStatistics:
    """Mean and covariance of pool3 features (pytorch-fid's ``mu``, ``sigma``) and the image count
    (None when unknown: a statistics file written by pytorch-fid itself)."""

    mu: np.ndarray
    sigma: np.ndarray
    images: int | None

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FidStatistics":
        """As ``calculate_activation_statistics``: float64 mean and ``np.cov(rowvar=False)``."""
        act = np.asarray(features, dtype=np.float64)
        n, dims = act.shape
        if n < MIN_IMAGES:  # np.cov would warn and divide by zero
            return cls(act.mean(axis=0) if n else np.full(dims, np.nan), np.full((dims, dims), np.nan), n)
        return cls(np.mean(act, axis=0), np.cov(act, rowvar=False), act.shape[0])

    def save(self, path: str | os.PathLike) -> None:
        """An ``.npz`` with ``mu`` and ``sigma`` (pytorch-fid's statistics format) and ``images``."""
        np.savez_compressed(path, mu=self.mu, sigma=self.sigma, images=self.images)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FidStatistics":
        with np.load(path) as f:
            return cls(f["mu"][:], f["sigma"][:], int(f["images"]) if "images" in f else None)


@dataclass(frozen=True)
class FidScore:
    """An FID (None when it cannot be computed), the image counts it used, and pytorch-fid's note
    (e.g. the 1e-6 diagonal offset taken for singular covariances)."""

    value: float | None
    images: int | None
    gt_images: int | None
    note: str | None = None


def frechet_distance(restored: FidStatistics, gt: FidStatistics) -> FidScore:
    """pytorch-fid's ``calculate_frechet_distance(mu1, sigma1, mu2, sigma2)`` of the two sets."""
    if any(n is not None and n < MIN_IMAGES for n in (restored.images, gt.images)):
        note = (f"FID needs at least {MIN_IMAGES} images per set (got {restored.images} restored, "
                f"{gt.images} GT): the covariance of one image is undefined")
        return FidScore(None, restored.images, gt.images, note)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # pytorch-fid prints the singular-product retry
            value = float(calculate_frechet_distance(restored.mu, restored.sigma, gt.mu, gt.sigma))
    except ValueError as exc:  # "Imaginary component ...": pytorch-fid gives no value either
        return FidScore(None, restored.images, gt.images, f"pytorch-fid: {exc}")
    if not np.isfinite(value):  # never a NaN in a table
        return FidScore(None, restored.images, gt.images, f"pytorch-fid gave {value}: no FID")
    return FidScore(value, restored.images, gt.images, printed.getvalue().strip() or None)


class FidAccumulator:
    """The FIDs of one run: each point's pool3 features by image index, and each task's GT
    statistics from its GT folder's files (what the reference's ``calculate_fid_given_paths`` reads).

    Points are any hashable keys (e.g. ``(task, label, nfe)``). The statistics are taken in image
    order, whatever the batches, sessions (`add_files`: PNGs written earlier) or processes
    (`merge`) that produced the features, so their rounding does not depend on them.
    """

    def __init__(self, inception: FidInception):
        self.inception = inception
        self.features: dict[Hashable, dict[int, np.ndarray]] = {}
        self.gt: dict[str, FidStatistics] = {}

    def add(self, point: Hashable, indices: Sequence[int], images: torch.Tensor) -> None:
        """Restored uint8 images ``[B, 3, H, W]`` of `point`, image `indices[i]` in row i."""
        self._store(point, indices, self.inception.features(images))

    def add_files(self, point: Hashable, indices: Sequence[int], files: Sequence[str | os.PathLike]) -> None:
        """Images of `point` already on disk (an earlier session of a resumed run)."""
        if files:
            self._store(point, indices, self.inception.features_of_files(files))

    def _store(self, point: Hashable, indices: Sequence[int], rows: np.ndarray) -> None:
        self.features.setdefault(point, {}).update(zip(indices, rows))

    def merge(self, features: dict[Hashable, dict[int, np.ndarray]]) -> None:
        """Features another process extracted (its `features`)."""
        for point, rows in features.items():
            self.features.setdefault(point, {}).update(rows)

    def gt_from_folder(self, task: str, folder: str | os.PathLike) -> FidStatistics:
        """The task's GT statistics from every image file of `folder`, computed once."""
        if task not in self.gt:
            self.gt[task] = FidStatistics.from_features(self.inception.features_of_files(image_files(folder)))
        return self.gt[task]

    def statistics(self, point: Hashable) -> FidStatistics:
        rows = self.features.get(point, {})
        features = np.stack([rows[i] for i in sorted(rows)]) if rows else np.empty((0, FID_DIMS), np.float32)
        return FidStatistics.from_features(features)

    def score(self, point: Hashable, task: str) -> FidScore:
        """The FID of `point`'s restored images against `task`'s GT (`gt_from_folder` first)."""
        return frechet_distance(self.statistics(point), self.gt[task])


__all__ = [
    "FID_DIMS",
    "FID_WEIGHTS",
    "FID_WEIGHTS_FILE",
    "FidAccumulator",
    "FidInception",
    "FidScore",
    "FidStatistics",
    "FidUnavailable",
    "FidWeightsMissing",
    "FidWeightsUnusable",
    "build_fid_inception",
    "fid_unavailable_reason",
    "frechet_distance",
    "image_files",
]
