"""uir.evaluation: the `test.py` evaluation.

    from uir.options import load_options
    from uir.evaluation import run
    result = run(load_options("options/mrsampler.yml", [("data_root", "demo_data/test")]))
    result.table        # one dict per (task, sampler, nfe)
    result.run_dir      # results/<name>[_N]/ with images, per_image.csv, results.{csv,md,json}

- `sweep`: the sweep points, and `load_restorer` (uir.restoration.Restorer from the options).
- `runner`: `run`, the run as a short story (one process or torchrun ranks); `evaluator`: one rank's work.
- `run_folder`, `sink`, `writer`, `tables`: where the results go and in what form.
"""
from uir.evaluation.runner import RunResult, run
from uir.evaluation.sweep import SweepPoint, build_sweep, load_restorer
from uir.evaluation.tables import METRICS, PER_IMAGE_COLUMNS, TABLE_COLUMNS, read_csv, sampler_settings, to_markdown

__all__ = [
    "RunResult", "run", "SweepPoint", "build_sweep", "load_restorer", "METRICS", "PER_IMAGE_COLUMNS", "TABLE_COLUMNS",
    "read_csv", "sampler_settings", "to_markdown",
]
