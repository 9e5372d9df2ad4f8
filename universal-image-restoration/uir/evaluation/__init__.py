"""uir.evaluation: the `test.py` pipeline.

    from uir.options import load_options
    from uir.evaluation import run
    result = run(load_options("options/mrsampler.yml", [("data_root", "demo_data/test")]))
    result.table        # one dict per (task, sampler, nfe)
    result.run_dir      # results/<name>[_N]/ with images, per_image.csv, results.{csv,md,json}

`USER_ERRORS` are the exceptions whose message is meant for the user (bad option, missing
folder or checkpoint, run folder conflict); the scripts print them without a traceback
(`uir.evaluation.cli`).
"""
from uir.data.paired import DataError
from uir.evaluation.cli import USER_ERRORS
from uir.evaluation.pipeline import RunResult, SweepPoint, build_sweep, restore_batch, run
from uir.evaluation.run_folder import RunFolderError
from uir.evaluation.tables import METRICS, PER_IMAGE_COLUMNS, TABLE_COLUMNS, read_csv, sampler_settings, to_markdown
from uir.models.checkpoint import CheckpointError
from uir.options.loader import OptionsError

__all__ = [
    "USER_ERRORS", "RunResult", "SweepPoint", "build_sweep", "restore_batch", "run", "RunFolderError",
    "METRICS", "PER_IMAGE_COLUMNS", "TABLE_COLUMNS", "read_csv", "sampler_settings", "to_markdown",
    "DataError", "CheckpointError", "OptionsError",
]
