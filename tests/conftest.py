"""Shared test fixtures.

The reference outputs ("goldens") are read from the folder named by UIR_GOLDEN_DIR,
defaulting to ../shared/golden beside the repository. A missing golden file fails the
test that needs it: it is never skipped.
"""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_dir() -> Path:
    env = os.environ.get("UIR_GOLDEN_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "golden"


def load_golden(name: str):
    path = golden_dir() / name
    if not path.is_file():
        pytest.fail(
            f"golden file {path} is missing: set UIR_GOLDEN_DIR to the folder that holds "
            f"the reference outputs (default ../shared/golden beside the repository)"
        )
    if path.suffix == ".json":
        import json

        return json.loads(path.read_text())
    return torch.load(path, weights_only=True, map_location="cpu")


@pytest.fixture(scope="session")
def golden():
    """Callable fixture: golden("sampler_golden.pt") -> the loaded object."""
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_golden(name)
        return cache[name]

    return get


@pytest.fixture(scope="session", autouse=True)
def no_downloads():
    """Tests never download: every torch hub download (LPIPS' AlexNet, FID's Inception) fails as
    on a machine without network, also in module-scoped fixtures that run a pipeline."""

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError(f"no network in the tests ({url})")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "download_url_to_file", offline)
        yield
