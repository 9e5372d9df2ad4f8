"""Helpers shared by the tests (pytest puts this folder on sys.path)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """A top-level script of the repository (e.g. "scripts/benchmark.py") as a module, without
    running its `__main__` block. It is registered in sys.modules, where dataclasses look up
    their module."""
    path = REPO / relative_path
    name = "uir_script_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
