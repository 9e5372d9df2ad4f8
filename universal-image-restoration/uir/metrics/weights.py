"""Pretrained metric weights (LPIPS' AlexNet, FID's Inception) from the torch hub cache.

The reference's libraries fetch these files with ``torch.hub.load_state_dict_from_url`` on first
use and keep them in ``<torch.hub.get_dir()>/checkpoints/``. `HubWeights.state_dict` does the
same, reads a named local file instead when one is given, and when the file is neither cached
nor downloadable raises `WeightsNotFound` with a message that names the file, its URL and the
folder to put it in (the metric's column then stays empty). A file that exists but cannot be
used raises `BadWeightsFile` (a `UserError`: the run stops before anything is restored): one
named by an option (`lpips_weights`, `fid_weights`) must be usable, and one in the hub cache
that is damaged is named with what to do (delete it, or replace it); neither is ever skipped
silently. Files are read with ``weights_only=True``.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from uir.common.checks import not_a_file
from uir.common.errors import WeightsFileError
from uir.common.tensors import first_nonfinite, torch_load_problem


class WeightsNotFound(RuntimeError):
    """The weights are not in the hub cache and could not be downloaded."""


class BadWeightsFile(WeightsFileError):
    """A weights file exists (or was named) but cannot be used as a state dict."""


Unusable = Callable[[str], Exception]  # a problem ("is a directory") -> the error that names the file


def read_state_dict(path: Path, unusable: Unusable) -> dict[str, torch.Tensor]:
    """A state dict read from `path` on the CPU; `unusable(problem)` is raised otherwise."""
    if not path.is_file():
        raise unusable(not_a_file(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is reported the same way
        raise unusable(torch_load_problem(path, exc)) from exc
    if not isinstance(state, dict):
        raise unusable(f"holds a {type(state).__name__}, not a state dict")
    bad = first_nonfinite(state)
    if bad is not None:  # a metric from such weights would be NaN
        raise unusable(f"is damaged: tensor {bad!r} holds NaN or infinite values")
    return state


@dataclass(frozen=True)
class HubWeights:
    """One downloadable weights file: its URL, what it is, and the option and flag that concern it
    (for messages)."""

    url: str
    what: str  # e.g. "AlexNet weights (LPIPS backbone)"
    option: str  # the options key naming a local copy, e.g. "lpips_weights"
    skip: str  # the test.py flag that runs without them, e.g. "--no-lpips"

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

    def source(self, weights_file: str | os.PathLike | None) -> tuple[Path, bool]:
        """The file the weights are read from, and whether the user named it."""
        if weights_file is not None:
            return Path(weights_file).expanduser(), True
        return self.cached_path(), False

    def unusable(self, weights_file: str | os.PathLike | None) -> Unusable:
        """The error for a problem of the file the weights are read from: named by `option`, or in the cache."""
        path, named = self.source(weights_file)

        def error(problem: str) -> BadWeightsFile:
            if named:
                return BadWeightsFile(f"{self.option}: {path} {problem}; name a copy of the {self.what} "
                                      f"({self.file_name}, from {self.url}), or unset {self.option} to use the torch "
                                      f"hub cache")
            return BadWeightsFile(f"the {self.what} in the torch hub cache, {path}, {problem}; delete it (it is "
                                  f"downloaded again when next needed) or replace it with {self.file_name} from "
                                  f"{self.url}, or run without this metric ({self.skip})")

        return error

    def state_dict(self, weights_file: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
        """The weights: from `weights_file` when given, else from the hub cache, else downloaded
        into it as ``torch.hub.load_state_dict_from_url`` does (with a progress bar).

        Raises `WeightsNotFound` when the download fails and `BadWeightsFile` for an unusable file.
        """
        path, named = self.source(weights_file)
        if named or os.path.lexists(path):  # a cached folder or broken link is no cache miss: it is refused
            return read_state_dict(path, self.unusable(weights_file))
        try:
            torch.hub.load_state_dict_from_url(self.url, progress=True, map_location="cpu", weights_only=True)
        except Exception as exc:  # no network, proxy, HTTP error, interrupted download, ...
            if not os.path.lexists(path):  # else it was downloaded, and is refused below, saying why
                raise WeightsNotFound(f"{self.missing_message()} ({type(exc).__name__}: {exc})") from exc
        return read_state_dict(path, self.unusable(weights_file))  # downloaded there: checked as a cached file is


__all__ = ["BadWeightsFile", "HubWeights", "WeightsNotFound", "read_state_dict"]
