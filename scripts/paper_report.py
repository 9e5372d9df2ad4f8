"""The MR Sampler paper's Figure 2 and tables from finished test.py runs.

    python scripts/paper_report.py RUN_DIR [RUN_DIR ...] [--out DIR] [--overwrite] [--no-paper]

Reads each run folder's results.json (rows: task, sampler or label, NFE, metrics, seconds per
image) and writes, into --out (default: paper_report[_N] beside the first run folder):
- figure2_<task>.png: FID, LPIPS, PSNR and SSIM against NFE (log axis), one line per sampler
  label, the paper's published curve of the same label dashed, the LQ input dotted;
- with --layout paper instead: figure2_paper.png, the published layout (FID and LPIPS against
  NFE per task, log-log axes);
- paper_tables.md / paper_tables.csv: task x label x NFE, the paper's value beside ours where
  it has one (uir/reporting/paper_values.yml, with its sources), seconds per image, image counts;
- ten_tasks.md / ten_tasks.csv, where the runs hold Posterior NFE 100 and MR Sampler-2
  (options/paper_ten_tasks.yml): per task, the smallest NFE at which MR Sampler-2 matches
  posterior-100 on LPIPS and FID within the paper's own spread, and the measured speed-up.
Runs are combined; a later run's row replaces an earlier one's for the same (task, label, NFE).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uir.common.cli import run_script
from uir.reporting import PAPER_VALUES_FILE, default_report_dir, write_paper_report
from uir.reporting.cli import write_and_list

PROG = "paper_report.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished test.py run folders")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default: paper_report[_N] beside the first run folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace report files already in --out")
    parser.add_argument("--paper-values", type=Path, default=PAPER_VALUES_FILE,
                        help="the paper's numbers (default: %(default)s)")
    parser.add_argument("--no-paper", action="store_true",
                        help="leave the paper's numbers out (runs of another network, e.g. the demo's)")
    parser.add_argument("--layout", choices=("strip", "paper"), default="strip",
                        help="Figure 2: a strip of FID, LPIPS, PSNR, SSIM per task (default), or the paper's "
                             "layout (FID and LPIPS per task, log-log axes)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paper_values = None if args.no_paper else args.paper_values
    return write_and_list(PROG, lambda: write_paper_report(args.run_dirs, args.out or default_report_dir(args.run_dirs),
                                                           paper_values=paper_values, overwrite=args.overwrite,
                                                           layout=args.layout))


if __name__ == "__main__":
    sys.exit(run_script(main, "paper_report.py"))
