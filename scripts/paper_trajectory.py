"""The reference's trajectory and convergence-ratio figures from a test.py run that kept
trajectories (a `trajectory:` block; options/paper_trajectory.yml, options/paper_convergence.yml).

    python scripts/paper_trajectory.py RUN_DIR [--out DIR] [--figures trajectory convergence] [--overwrite]

Writes, into --out (default: <run name>_figures[_N] beside the run folder), for every image the
run kept:
- trajectory_<task>_<image>.png: (a) LQ, GT and each sweep point's result; (b) each point's
  states from the shared x_T on the first two principal components of GT + every state, an
  arrow per step, the GT as a star, final PSNR / SSIM / LPIPS in the legend;
- convergence_<task>_<image>.png: the fraction of pixels per step where |d0 / d1| > h (the
  network's output against its finite difference in lambda), one line per point, where the run
  kept the network's outputs (trajectory.predictions, the default);
- trajectory_report.md: the numbers behind both.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uir.common.cli import run_script
from uir.reporting import default_report_dir
from uir.reporting.cli import write_and_list
from uir.reporting.trajectory_report import FIGURES, report_dir_name, write_trajectory_report

PROG = "paper_trajectory.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a test.py run folder with trajectories/")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: <run name>_figures[_N] beside the run folder)")
    parser.add_argument("--figures", nargs="+", default=list(FIGURES), choices=FIGURES,
                        help="which figures (default: both)")
    parser.add_argument("--overwrite", action="store_true", help="replace report files already in --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return write_and_list(PROG, lambda: write_trajectory_report(
        args.run_dir, args.out or default_report_dir([args.run_dir], report_dir_name(args.run_dir)),
        figures=args.figures, overwrite=args.overwrite))


if __name__ == "__main__":
    sys.exit(run_script(main, PROG))
