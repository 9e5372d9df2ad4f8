"""Options of `test.py`: YAML files and command-line overrides, validated into frozen dataclasses.

    from uir.options import load_options, parse_cli
    options = load_options("options/mrsampler.yml", [("sampler.order", 3)])
    options = parse_cli(["-opt", "options/mrsampler.yml", "--nfe", "5", "10"])

The names below are imported lazily: `uir.options.validation` is used by the samplers,
which `uir.options.schema` itself imports, so this package must not import them eagerly.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "loader": (
        "FLAG_KEYS", "OptionsError", "apply_overrides", "build_arg_parser", "load_options",
        "overrides_from_args", "parse_assignment", "parse_cli", "read_yaml", "with_override",
    ),
    "schema": (
        "PRECISIONS", "REFERENCE_TASKS", "TOP_LEVEL_KEYS", "DatasetOptions", "DegradationOptions",
        "EvalOptions", "NetworkOptions", "PathOptions", "SDEOptions", "SweepOptions", "parse_options",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"uir.options.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'uir.options' has no attribute {name!r}")
