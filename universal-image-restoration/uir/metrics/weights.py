"""Pretrained metric weights (LPIPS' AlexNet, FID's Inception) from the torch hub cache.

The reference's libraries fetch these files with ``torch.hub.load_state_dict_from_url`` on first
use and keep them in ``<torch.hub.get_dir()>/checkpoints/``. `HubWeights.state_dict` does the
same, reads a named local file instead when one is given, and when the file is neither cached
nor downloadable raises `WeightsNotFound` with a message that names the file, its URL and the
folder to put it in. Files are read with ``weights_only=True``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from uir.common.tensors import first_nonfinite


class WeightsNotFound(RuntimeError):
    """The weights are not in the hub cache and could not be downloaded."""


class BadWeightsFile(RuntimeError):
    """A weights file exists (or was named) but cannot be used as a state dict."""


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict read from `path` on the CPU; `BadWeightsFile` naming `what` and the path otherwise."""
    if not path.is_file():
        raise BadWeightsFile(f"the {what} file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is reported the same way
        raise BadWeightsFile(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise BadWeightsFile(f"{what} {path} holds a {type(state).__name__}, not a state dict")
    bad = first_nonfinite(state)
    if bad is not None:  # a metric from such weights would be NaN
        raise BadWeightsFile(f"{what} {path}: tensor {bad!r} holds NaN or infinite values; the file is damaged")
    return state


@dataclass(frozen=True)
class HubWeights:
    """One downloadable weights file: its URL and what it is (for messages)."""

    url: str
    what: str  # e.g. "AlexNet weights (LPIPS backbone)"

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def cached_path(self) -> Path:
        """``<torch.hub.get_dir()>/checkpoints/<file>``, where torch hub keeps downloads."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def missing_message(self) -> str:
        """What to do when the file is neither cached nor downloadable."""
        folder = self.cached_path().parent
        return (
            f"the {self.what} {self.file_name} are not in the torch hub cache and could not be "
            f"downloaded; put {self.file_name} (from {self.url}) in {folder} (the folder is "
            f"<torch.hub.get_dir()>/checkpoints; set TORCH_HOME to move it), or name a local copy"
        )

    def state_dict(self, weights_file: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
        """The weights: from `weights_file` when given, else from the hub cache, else downloaded
        into it as ``torch.hub.load_state_dict_from_url`` does (with a progress bar).

        Raises `WeightsNotFound` when the download fails and `BadWeightsFile` for an unusable file.
        """
        if weights_file is not None:
            return read_state_dict(Path(weights_file).expanduser(), self.what)
        cached = self.cached_path()
        if cached.is_file():
            return read_state_dict(cached, self.what)
        try:
            torch.hub.load_state_dict_from_url(self.url, progress=True, map_location="cpu", weights_only=True)
        except Exception as exc:  # no network, proxy, HTTP error, interrupted download, ...
            raise WeightsNotFound(f"{self.missing_message()} ({type(exc).__name__}: {exc})") from exc
        return read_state_dict(cached, self.what)  # downloaded there: checked as a cached file is


__all__ = ["BadWeightsFile", "HubWeights", "WeightsNotFound", "read_state_dict"]
