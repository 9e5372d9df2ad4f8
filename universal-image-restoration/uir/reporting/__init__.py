"""uir.reporting: the paper's figures and tables from finished runs (`scripts/paper_report.py`).

- `runs`: finished run folders' ``results.json`` -> one row per (task, label, NFE).
- `paper`: the paper's published numbers (`paper_values.yml`, with their sources).
- `tables`: Markdown and CSV, the paper's value beside ours.
- `figures`: Figure 2 style PNG per task, or the paper's layout (matplotlib).
- `ten_tasks`: the ten-task claim (where MR Sampler-2 matches posterior-100, the speed-up).
- `report`: all of it for a list of run folders.
- `trajectories`, `trajectory_figure`, `convergence`, `trajectory_report`: the trajectory and
  convergence-ratio figures of a run that kept trajectories (`scripts/paper_trajectory.py`).
- `cli`: what the report scripts share.
"""
from .paper import PAPER_VALUES_FILE, PaperValues, load_paper_values
from .report import ReportFiles, default_report_dir, write_paper_report
from .runs import ReportError, ResultRow, read_run, read_runs

__all__ = [
    "PAPER_VALUES_FILE",
    "PaperValues",
    "ReportError",
    "ReportFiles",
    "ResultRow",
    "default_report_dir",
    "load_paper_values",
    "read_run",
    "read_runs",
    "write_paper_report",
]
