"""Options of `test.py`: YAML files and command-line overrides, validated into frozen blocks.

    from uir.options import load_options
    options = load_options("options/mrsampler.yml", [("sampler.order", 3)])
"""
from uir.common.errors import OptionsError
from uir.options.loader import (
    FLAG_KEYS, apply_overrides, build_arg_parser, load_options, load_with, overrides_from_args, parse_assignment,
    read_yaml, with_override,
)
from uir.options.schema import (
    REFERENCE_TASKS, TOP_LEVEL_KEYS, DatasetOptions, DegradationOptions, EvalOptions, NetworkOptions, PathOptions,
    RunSpec, SDEOptions, SweepEntry, SweepOptions, parse_options,
)

__all__ = [
    "OptionsError", "FLAG_KEYS", "apply_overrides", "build_arg_parser", "load_options", "load_with",
    "overrides_from_args", "parse_assignment", "read_yaml", "with_override", "REFERENCE_TASKS", "TOP_LEVEL_KEYS",
    "DatasetOptions", "DegradationOptions", "EvalOptions", "NetworkOptions", "PathOptions", "RunSpec", "SDEOptions",
    "SweepEntry", "SweepOptions", "parse_options",
]
