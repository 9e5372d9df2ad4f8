"""Build the demo data set (real scikit-image photos with synthetic degradations).

    python scripts/make_demo_data.py --out demo_data --seed 0 [--tasks noisy hazy] [--size 128]
        [--train-size 128] [--n-test 3] [--n-train 48] [--train-dark-fraction 0]
        [--workers 1] [--overwrite]
"""
from __future__ import annotations

import argparse
import sys
import time

from uir.data.demo import DEMO_TASKS, make_demo_dataset
from uir.common.cli import report_user_error, run_script


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo_data", help="output folder (default: demo_data)")
    parser.add_argument("--seed", type=int, default=0, help="non-negative seed (default: 0)")
    parser.add_argument("--tasks", nargs="+", choices=DEMO_TASKS, default=list(DEMO_TASKS),
                        metavar="TASK", help=f"subset of {', '.join(DEMO_TASKS)} (default: all)")
    parser.add_argument("--size", type=int, default=128, help="test crop size (default: 128)")
    parser.add_argument("--train-size", type=int, default=128,
                        help="training patch size (default: 128)")
    parser.add_argument("--n-test", type=int, default=3, help="test images per task (default: 3)")
    parser.add_argument("--n-train", type=int, default=48,
                        help="training patches per task (default: 48)")
    parser.add_argument("--train-dark-fraction", type=float, default=0.0, metavar="P",
                        help="darken this fraction of the training GT crops of every task but "
                             "low-light (default: 0)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes writing the set, one (split, task) folder each; the files "
                             "are the same for any N (default: 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the demo set in a non-empty output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        root = make_demo_dataset(
            args.out, seed=args.seed, tasks=args.tasks, test_size=args.size,
            n_test_per_task=args.n_test, n_train_per_task=args.n_train,
            train_size=args.train_size, train_dark_fraction=args.train_dark_fraction,
            overwrite=args.overwrite, workers=args.workers,
        )
    except (FileExistsError, NotADirectoryError, ValueError) as err:
        return report_user_error("make_demo_data", err)
    elapsed = time.perf_counter() - start
    print(f"wrote {len(args.tasks)} task(s) x ({args.n_test} test + {args.n_train} train) pairs "
          f"to {root} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main, "make_demo_data.py"))
