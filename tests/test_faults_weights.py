"""Metric weights (issue #26, item 9): a weights file the user names (`lpips_weights`,
`fid_weights`) must be usable or the run stops, one line naming it, before anything is restored;
an unusable file in the torch hub cache is named with what to do; weights that are only missing
(not named, not cached, not downloadable) still leave the column empty, as before."""
from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path

import pytest
import torch
import yaml

from helpers import load_script
from uir.evaluation import read_csv, run
from uir.metrics.lpips_metric import ALEXNET_WEIGHTS_FILE
from workspace import make_workspace, options, raw_options


class Payload:
    """A pickle that would delete `marker` if it were ever unpickled with code execution."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.remove, (str(self.marker),)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME (hub cache <tmp>/hub/checkpoints); downloads fail (conftest.no_downloads)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch"


def unusable_file(folder: Path, case: str) -> Path:
    """A weights file that cannot be used, as the hostile cases of the issue."""
    path = folder / f"{case}.pth"
    if case == "directory":
        path.mkdir()
    elif case == "text":
        path.write_text("these are not weights\n")
    elif case == "wrong_keys":
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    elif case == "pickle":
        marker = folder / "marker"
        marker.write_text("still here")
        path.write_bytes(pickle.dumps({"features.0.weight": Payload(marker)}))
    elif case == "nan":
        torch.save({"features.0.weight": torch.full((2,), float("nan"))}, path)
    return path


def run_test_py(ws: Path, tmp_path: Path, capsys, **extra) -> tuple[int, str]:
    opt = tmp_path / "o.yml"
    opt.write_text(yaml.safe_dump(raw_options(ws, str(tmp_path / "results"), max_images=1, **extra)))
    code = load_script("test.py").main(["-opt", str(opt)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case, problem", [
    ("directory", r"is a directory"),
    ("text", r"is not a file written by torch\.save; it begins with b'these ar'"),
    ("wrong_keys", r"has no tensor 'features\.0\.weight'; it is not torchvision's AlexNet state dict"),
    ("pickle", r"holds Python objects besides tensors \(a pickle payload\), which are never loaded"),
    ("nan", r"is damaged: tensor 'features\.0\.weight' holds NaN or infinite values"),
])
def test_an_unusable_named_lpips_file_stops_the_run_before_anything_is_restored(ws, tmp_path, capsys, torch_home,
                                                                                 case, problem):
    path = unusable_file(tmp_path, case)
    code, err = run_test_py(ws, tmp_path, capsys, lpips_weights=str(path), fid=False)
    lines = [line for line in err.splitlines() if line.startswith("test.py: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"lpips_weights: {path} " in lines[0] and "; name a copy of the AlexNet weights" in lines[0]
    assert re.search(problem, lines[0]), lines[0]
    assert not (tmp_path / "results").exists()  # no run folder: nothing restored
    if case == "pickle":
        assert (tmp_path / "marker").read_text() == "still here"  # the payload never ran


def test_an_unusable_named_fid_file_stops_the_run(ws, tmp_path, capsys, torch_home):
    path = unusable_file(tmp_path, "wrong_keys")
    code, err = run_test_py(ws, tmp_path, capsys, fid_weights=str(path), lpips=False)
    lines = [line for line in err.splitlines() if line.startswith("test.py: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"test.py: error: FID: fid_weights: {path} does not fit the FID Inception")
    assert not (tmp_path / "results").exists()


def test_an_unusable_cached_file_is_named_with_what_to_do(ws, tmp_path, capsys, torch_home):
    cached = torch_home / "hub" / "checkpoints" / ALEXNET_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"<html>502 Bad Gateway</html>")  # a download that went wrong
    code, err = run_test_py(ws, tmp_path, capsys, fid=False)
    assert code == 2 and "Traceback" not in err
    assert (f"the AlexNet weights (LPIPS backbone) in the torch hub cache, {cached}, is not a file written by "
            f"torch.save") in err
    assert "delete it (it is downloaded again when next needed) or replace it" in err and "(--no-lpips)" in err
    assert cached.read_bytes() == b"<html>502 Bad Gateway</html>"  # never deleted unasked


def test_missing_weights_only_leave_the_column_empty(ws, tmp_path, caplog, torch_home):
    with caplog.at_level(logging.WARNING, logger="uir"):
        result = run(options(ws, str(tmp_path / "results"), max_images=1), progress=False)
    warned = [r.getMessage() for r in caplog.records if "the LPIPS column stays empty" in r.getMessage()]
    assert len(warned) == 1 and ALEXNET_WEIGHTS_FILE in warned[0]
    rows = read_csv(result.paths["csv"])
    assert rows and all(r["lpips"] is None and r["psnr"] is not None for r in rows)
    assert json.loads((result.run_dir / "run.json").read_text())["status"] == "finished"
