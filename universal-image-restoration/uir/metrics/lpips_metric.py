"""LPIPS (AlexNet, v0.1) as the reference computes it, without any network access.

The reference calls ``lpips.LPIPS(net='alex')``, which asks torchvision for the ImageNet
AlexNet weights (downloaded to ``<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth``
on first use) and reads the linear calibration layers shipped inside the ``lpips`` package.
Here the network is built with a random trunk and then both weight files are loaded
explicitly (``weights_only=True``): nothing is downloaded, and if the AlexNet file is not
in the hub cache no metric is built at all, so LPIPS is never computed with a randomly
initialised backbone.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_WEIGHTS_URL = f"https://download.pytorch.org/models/{ALEXNET_WEIGHTS_FILE}"
LPIPS_VERSION = "0.1"

class LpipsUnavailable(RuntimeError):
    """LPIPS cannot be built here (missing package or weight files, or a bad weight file)."""


def alexnet_weights_path() -> Path:
    """Where torchvision caches the AlexNet weights: ``<torch.hub.get_dir()>/checkpoints/...``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS_FILE


def _linear_weights_path() -> Path:
    import lpips

    return Path(lpips.__file__).resolve().parent / "weights" / f"v{LPIPS_VERSION}" / "alex.pth"


def unavailable_reason() -> str | None:
    """Why LPIPS cannot be built right now, or None when all its files are in place.

    Only looks for files; it never touches the network.
    """
    try:
        linear_path = _linear_weights_path()
    except ImportError as exc:
        return f"LPIPS unavailable: the 'lpips' package cannot be imported ({exc}); pip install lpips"
    backbone_path = alexnet_weights_path()
    if not backbone_path.is_file():
        return (
            f"LPIPS unavailable: the AlexNet backbone weights are not in the torch hub cache. "
            f"Put {ALEXNET_WEIGHTS_FILE} (from {ALEXNET_WEIGHTS_URL}) at {backbone_path} "
            f"(the folder is <torch.hub.get_dir()>/checkpoints; set TORCH_HOME to move it)."
        )
    if not linear_path.is_file():
        return (
            f"LPIPS unavailable: the lpips package's calibration weights {linear_path} are "
            f"missing; reinstall lpips"
        )
    return None


def _load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is reported the same way
        raise LpipsUnavailable(f"LPIPS unavailable: cannot read {what} {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise LpipsUnavailable(
            f"LPIPS unavailable: {what} {path} holds a {type(state).__name__}, not a state dict"
        )
    return state


def _trunk_state(alexnet_state: dict[str, torch.Tensor], trunk: torch.nn.Module) -> dict:
    """Map torchvision's ``features.<i>.<param>`` keys onto lpips' ``slice<k>.<i>.<param>``."""
    mapped = {}
    for key in trunk.state_dict():
        _slice, index, param = key.split(".")
        source = f"features.{index}.{param}"
        if source not in alexnet_state:
            raise LpipsUnavailable(
                f"LPIPS unavailable: {alexnet_weights_path()} has no '{source}'; it is not "
                f"torchvision's AlexNet state dict ({ALEXNET_WEIGHTS_FILE})"
            )
        mapped[key] = alexnet_state[source]
    return mapped


def _build_network() -> torch.nn.Module:
    reason = unavailable_reason()
    if reason is not None:
        raise LpipsUnavailable(reason)
    import lpips

    with warnings.catch_warnings():
        # lpips passes torchvision's deprecated ``pretrained=`` flag; the trunk is random
        # here and is overwritten below.
        for deprecation in (".*'pretrained' is deprecated", "Arguments other than a weight enum"):
            warnings.filterwarnings("ignore", message=deprecation, category=UserWarning)
        net = lpips.LPIPS(
            pretrained=False, net="alex", version=LPIPS_VERSION, pnet_rand=True, verbose=False
        )
    trunk_state = _trunk_state(_load_state_dict(alexnet_weights_path(), "AlexNet weights"), net.net)
    linear_path = _linear_weights_path()
    linear_state = _load_state_dict(linear_path, "LPIPS calibration weights")
    expected = {f"lin{i}.{k}" for i, lin in enumerate(net.lins) for k in lin.state_dict()}
    if set(linear_state) != expected:
        raise LpipsUnavailable(
            f"LPIPS unavailable: {linear_path} holds keys {sorted(linear_state)}, "
            f"expected {sorted(expected)}"
        )
    try:
        net.net.load_state_dict(trunk_state, strict=True)
        for i, lin in enumerate(net.lins):
            prefix = f"lin{i}."
            lin.load_state_dict(
                {k[len(prefix):]: v for k, v in linear_state.items() if k.startswith(prefix)},
                strict=True,
            )
    except RuntimeError as exc:
        raise LpipsUnavailable(f"LPIPS unavailable: weight shapes do not fit: {exc}") from exc
    return net.eval().requires_grad_(False)


class LpipsMetric:
    """LPIPS distance (AlexNet, v0.1) between batches of [0, 1] images on one device."""

    def __init__(self, network: torch.nn.Module, device: torch.device):
        self.network = network
        self.device = device

    @classmethod
    def load(cls, device: torch.device | str) -> "LpipsMetric":
        """Build it from the cached weight files; raises `LpipsUnavailable` if that fails."""
        device = torch.device(device)
        return cls(_build_network().to(device), device)

    @classmethod
    def create(cls, device: torch.device | str) -> "LpipsMetric | None":
        """Like `load`, but None when weight files are missing (see `unavailable_reason`).

        A weight file that is present but unusable still raises `LpipsUnavailable`.
        """
        if unavailable_reason() is not None:
            return None
        return cls.load(device)

    @torch.no_grad()
    def __call__(self, out01: torch.Tensor, gt01: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS, float32 ``[B]`` on this metric's device.

        ``out01``, ``gt01``: ``[B, 3, H, W]`` float images in [0, 1]. Like the reference,
        they are mapped to [-1, 1] as given (not clamped, not quantized).
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
        out = out01.to(self.device, torch.float32) * 2 - 1
        return self.network(gt, out).reshape(-1)


__all__ = [
    "ALEXNET_WEIGHTS_FILE",
    "LpipsMetric",
    "LpipsUnavailable",
    "alexnet_weights_path",
    "unavailable_reason",
]
