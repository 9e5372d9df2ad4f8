"""uir.evaluation: the `test.py` evaluation.

    from uir.options import load_options
    from uir.evaluation import run
    result = run(load_options("options/mrsampler.yml", [("data_root", "demo_data/test")]))
    result.table        # one dict per (task, sampler, label, nfe), with the columns result.columns
    result.run_dir      # results/<name>[_N]/ with images, per_image.csv, results.{csv,md,json}

- `sweep`: the points' samplers, and `load_restorer` (uir.restoration.Restorer from the options).
- `runner`: `run`, the run as a short story (one process or torchrun ranks); `evaluator`: one rank's work.
- `run_folder`, `sink`, `writer`, `tables`: where the results go and in what form.
"""
from uir.evaluation.runner import RunResult, run
from uir.evaluation.sweep import build_sampler_for, build_sweep, load_restorer
from uir.evaluation.tables import ImageRow, Layout, read_csv, settings_columns, to_markdown

__all__ = [
    "RunResult", "run", "build_sampler_for", "build_sweep", "load_restorer", "ImageRow", "Layout", "read_csv",
    "settings_columns", "to_markdown",
]
