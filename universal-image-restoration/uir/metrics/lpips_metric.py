"""LPIPS (AlexNet, v0.1) as the reference computes it.

The reference calls ``lpips.LPIPS(net='alex')``, which asks torchvision for the ImageNet
AlexNet weights (downloaded to ``<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth``
on first use) and reads the linear calibration layers shipped inside the ``lpips`` package.
Here the network is built with a random trunk and then both weight files are loaded
explicitly (``weights_only=True``): the AlexNet file comes from a named local file, the hub
cache, or torchvision's download into it; when none of these works no metric is built at
all, so LPIPS is never computed with a randomly initialised backbone.

What LPIPS sees: the reference's ``tensor2img`` clamps the float output to [0, 1] in place
before ``lpips_fn(GT * 2 - 1, SR_img * 2 - 1)`` reads it, so LPIPS sees the output clamped
but not quantized (`lpips_input`); `LpipsMetric` applies that itself.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from uir.metrics.registry import METRICS, ImageMetric, MetricUnavailable, ScoreBatch
from uir.metrics.weights import BadWeightsFile, HubWeights, WeightsNotFound, read_state_dict

LPIPS_VERSION = "0.1"
ALEXNET_WEIGHTS = HubWeights(
    "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "AlexNet weights (LPIPS backbone)",
    option="lpips_weights", skip="--no-lpips",
)
ALEXNET_WEIGHTS_FILE = ALEXNET_WEIGHTS.file_name
ALEXNET_WEIGHTS_URL = ALEXNET_WEIGHTS.url


class LpipsUnavailable(MetricUnavailable):
    """LPIPS cannot be built here (missing package or weight files, or a bad weight file)."""


class LpipsWeightsMissing(LpipsUnavailable):
    """AlexNet's weights are not cached, not named, and could not be downloaded."""


class LpipsWeightsUnusable(LpipsUnavailable, BadWeightsFile):
    """The AlexNet weights file named by `lpips_weights`, or the one in the hub cache, cannot be
    used: a `UserError` that stops the run (never an empty column)."""


def alexnet_weights_path() -> Path:
    """Where torchvision caches the AlexNet weights: ``<torch.hub.get_dir()>/checkpoints/...``."""
    return ALEXNET_WEIGHTS.cached_path()


def _linear_weights_path() -> Path:
    import lpips

    return Path(lpips.__file__).resolve().parent / "weights" / f"v{LPIPS_VERSION}" / "alex.pth"


def _package_missing(exc: ImportError) -> str:
    return f"LPIPS unavailable: the 'lpips' package cannot be imported ({exc}); pip install lpips"


def unavailable_reason() -> str | None:
    """Why LPIPS cannot be built from the files in place, or None when they all are.

    Only looks for files; it never touches the network. When `LpipsMetric.create` returned
    None (no cached AlexNet weights, and the download failed) this is the message to show.
    """
    try:
        linear_path = _linear_weights_path()
    except ImportError as exc:
        return _package_missing(exc)
    if not alexnet_weights_path().is_file():
        return f"LPIPS unavailable: {ALEXNET_WEIGHTS.missing_message()}"
    if not linear_path.is_file():
        return (
            f"LPIPS unavailable: the lpips package's calibration weights {linear_path} are "
            f"missing; reinstall lpips"
        )
    return None


def lpips_input(x: torch.Tensor) -> torch.Tensor:
    """What the reference's LPIPS sees of a [0, 1] float image: clamped to [0, 1], not quantized.

    (Its ``tensor2img`` clamps the sampler output in place before LPIPS reads it; `posterior`
    and `sde` outputs can lie far outside [0, 1].)
    """
    return x.clamp(0.0, 1.0)


def _unusable(weights_file: str | os.PathLike | None, problem: str) -> LpipsWeightsUnusable:
    return LpipsWeightsUnusable(f"LPIPS: {ALEXNET_WEIGHTS.unusable(weights_file)(problem)}")


def _alexnet_state(weights_file: str | os.PathLike | None) -> dict[str, torch.Tensor]:
    try:
        return ALEXNET_WEIGHTS.state_dict(weights_file)
    except WeightsNotFound as exc:
        raise LpipsWeightsMissing(f"LPIPS unavailable: {exc}") from exc
    except BadWeightsFile as exc:
        raise LpipsWeightsUnusable(f"LPIPS: {exc}") from exc


def _trunk_state(alexnet_state: dict[str, torch.Tensor], trunk: torch.nn.Module,
                 weights_file: str | os.PathLike | None) -> dict:
    """Map torchvision's ``features.<i>.<param>`` keys onto lpips' ``slice<k>.<i>.<param>``."""
    mapped = {}
    for key in trunk.state_dict():
        _slice, index, param = key.split(".")
        name = f"features.{index}.{param}"
        value = alexnet_state.get(name)
        if not isinstance(value, torch.Tensor):
            raise _unusable(weights_file, f"has no tensor '{name}'; it is not torchvision's AlexNet state dict "
                                          f"(keys {sorted(map(str, alexnet_state))[:4]}...)")
        mapped[key] = value
    return mapped


def _linear_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    linear_path = _linear_weights_path()
    linear_state = read_state_dict(linear_path, lambda problem: LpipsUnavailable(
        f"LPIPS unavailable: the lpips package's calibration weights {linear_path} {problem}; reinstall lpips"))
    expected = {f"lin{i}.{k}" for i, lin in enumerate(net.lins) for k in lin.state_dict()}
    if set(linear_state) != expected:
        raise LpipsUnavailable(
            f"LPIPS unavailable: {linear_path} holds keys {sorted(linear_state)}, "
            f"expected {sorted(expected)}"
        )
    return linear_state


def _build_network(weights_file: str | os.PathLike | None) -> torch.nn.Module:
    try:
        import lpips
    except ImportError as exc:
        raise LpipsUnavailable(_package_missing(exc)) from exc
    alexnet_state = _alexnet_state(weights_file)
    with warnings.catch_warnings():
        # lpips passes torchvision's deprecated ``pretrained=`` flag; the trunk is random
        # here and is overwritten below.
        for deprecation in (".*'pretrained' is deprecated", "Arguments other than a weight enum"):
            warnings.filterwarnings("ignore", message=deprecation, category=UserWarning)
        net = lpips.LPIPS(
            pretrained=False, net="alex", version=LPIPS_VERSION, pnet_rand=True, verbose=False
        )
    trunk_state = _trunk_state(alexnet_state, net.net, weights_file)
    linear_state = _linear_state(net)
    try:
        net.net.load_state_dict(trunk_state, strict=True)
    except RuntimeError as exc:
        raise _unusable(weights_file, f"does not fit AlexNet: {' '.join(str(exc).split())[:300]}") from exc
    try:
        for i, lin in enumerate(net.lins):
            prefix = f"lin{i}."
            lin.load_state_dict(
                {k[len(prefix):]: v for k, v in linear_state.items() if k.startswith(prefix)},
                strict=True,
            )
    except RuntimeError as exc:
        raise LpipsUnavailable(f"LPIPS unavailable: the lpips package's calibration weights do not fit: {exc}; "
                               f"reinstall lpips") from exc
    return net.eval().requires_grad_(False)


class LpipsMetric:
    """LPIPS distance (AlexNet, v0.1) between batches of [0, 1] images on one device."""

    def __init__(self, network: torch.nn.Module, device: torch.device):
        self.network = network
        self.device = device

    @classmethod
    def load(cls, device: torch.device | str, weights_file: str | os.PathLike | None = None) -> "LpipsMetric":
        """Build it with AlexNet's weights from `weights_file`, the hub cache, or torchvision's
        download into it; raises `LpipsUnavailable` if that fails: `LpipsWeightsMissing` when the
        weights are missing and cannot be downloaded, `LpipsWeightsUnusable` (a `UserError`) when
        the named or cached file cannot be used."""
        device = torch.device(device)
        return cls(_build_network(weights_file).to(device), device)

    @classmethod
    def create(cls, device: torch.device | str, weights_file: str | os.PathLike | None = None) -> "LpipsMetric | None":
        """Like `load`, but None when AlexNet's weights are missing and cannot be downloaded
        (the message is `unavailable_reason()`). An unusable file still raises `LpipsWeightsUnusable`.
        """
        try:
            return cls.load(device, weights_file)
        except LpipsWeightsMissing:
            return None

    @torch.no_grad()
    def __call__(self, out01: torch.Tensor, gt01: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS, float32 ``[B]`` on this metric's device.

        ``out01``: the sampler's float output ``[B, 3, H, W]``, any range; like the reference,
        LPIPS sees it clamped to [0, 1] but not quantized (`lpips_input`). ``gt01``: the GT in
        [0, 1]. Both are mapped to [-1, 1].
        """
        for name, x in (("out01", out01), ("gt01", gt01)):
            if x.dim() != 4 or x.shape[1] != 3:
                raise ValueError(f"{name}: expected [B, 3, H, W] images, got shape {tuple(x.shape)}")
        if out01.shape != gt01.shape:
            raise ValueError(
                f"out01 and gt01 must have the same shape, got {tuple(out01.shape)} and "
                f"{tuple(gt01.shape)}"
            )
        gt = gt01.to(self.device, torch.float32) * 2 - 1
        out = lpips_input(out01.to(self.device, torch.float32)) * 2 - 1
        return self.network(gt, out).reshape(-1)


@METRICS.register("lpips")
class LPIPS(ImageMetric):
    """LPIPS (AlexNet, v0.1) of each image, as the reference's `lpips.LPIPS(net='alex')`."""

    title = "LPIPS"
    higher_is_better = False
    default = True
    switch = "lpips"
    weights = "lpips_weights"

    def __init__(self, network: LpipsMetric):
        self.network = network

    @classmethod
    def load(cls, device: torch.device, weights_file: str | None = None) -> "LPIPS | None":
        network = LpipsMetric.create(device, weights_file)
        return cls(network) if network is not None else None

    @classmethod
    def unavailable(cls) -> str:
        return unavailable_reason() or "LPIPS unavailable"

    def __call__(self, batch: ScoreBatch) -> torch.Tensor:
        return self.network(batch.out, batch.gt)


__all__ = [
    "ALEXNET_WEIGHTS",
    "LPIPS",
    "ALEXNET_WEIGHTS_FILE",
    "ALEXNET_WEIGHTS_URL",
    "LpipsMetric",
    "LpipsUnavailable",
    "LpipsWeightsMissing",
    "LpipsWeightsUnusable",
    "alexnet_weights_path",
    "lpips_input",
    "unavailable_reason",
]
