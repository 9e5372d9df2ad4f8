"""Options of `test.py` and of the Python API: YAML files and command-line overrides, validated
into frozen blocks.

    from uir.options import load_options
    options = load_options("options/mrsampler.yml", [("sampler.order", 3)])
"""
from uir.common.errors import OptionsError
from uir.options.blocks import (
    REFERENCE_TASKS, DatasetOptions, DegradationOptions, NetworkOptions, PathOptions, SDEOptions,
)
from uir.options.loader import (
    FlagOption, apply_overrides, build_arg_parser, flag_options, load_options, load_with, overrides_from_args,
    parse_assignment, read_yaml, with_override,
)
from uir.options.restorer import FAST_SETTINGS, RestorerOptions
from uir.options.schema import (
    TOP_LEVEL_KEYS, DataOptions, EvalOptions, MetricOptions, OutputOptions, parse_options, parse_restorer_options,
)
from uir.options.sweep import PointKey, SweepOptions, SweepPoint, SweepRun, as_runs

__all__ = [
    "OptionsError", "REFERENCE_TASKS", "DatasetOptions", "DegradationOptions", "NetworkOptions", "PathOptions",
    "SDEOptions", "FlagOption", "apply_overrides", "build_arg_parser", "flag_options", "load_options", "load_with",
    "overrides_from_args", "parse_assignment", "read_yaml", "with_override", "FAST_SETTINGS", "RestorerOptions",
    "TOP_LEVEL_KEYS", "DataOptions", "EvalOptions", "MetricOptions", "OutputOptions", "parse_options",
    "parse_restorer_options", "PointKey", "SweepOptions", "SweepPoint", "SweepRun", "as_runs",
]
