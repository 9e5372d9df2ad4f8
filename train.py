"""Train an IR-SDE restoration network (ConditionalUNet) on paired LQ/GT crops.

    python train.py -opt options/train_demo.yml [--resume | --overwrite] [--set KEY.PATH=VALUE ...]
                    [--threads N] [--no-progress]
    torchrun --nproc_per_node=4 train.py -opt options/train.yml ...     # 4 GPUs (or CPU processes)

options/train.yml is the reference's, which trained the published universal-ir.pth. Writes
experiments/<name>/: models/<step>_G.pth and latest_G.pth (raw weights), latest.pth and
lastest_EMA.pth (EMA weights), best.pth; training_state/latest.state for --resume; train.log;
val.jsonl; tb_logger/ with use_tb_logger. See uir/training/trainer.py.
"""
from __future__ import annotations

import argparse
import sys

import torch

from uir.common.cli import report_user_error
from uir.common.distributed import RankFailure
from uir.common.errors import UserError
from uir.options.loader import parse_assignment
from uir.training import Trainer, load_train_options


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n")[0])
    p.add_argument("-opt", "--opt", dest="opt", required=True, metavar="YML", help="training options file (YAML)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in experiments_root/name")
    mode.add_argument("--overwrite", action="store_true", help="delete the run in experiments_root/name and start again")
    p.add_argument("--set", dest="set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="set any options key, e.g. --set train.niter=500 (repeatable; value read as YAML)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a CPU shared with other jobs, "
                        "and 2 per run when several runs share a GPU machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the log still goes to the console)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            return report_user_error("train.py", f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        options = load_train_options(args.opt, [parse_assignment(text) for text in args.set])
        trainer = Trainer(options, resume=args.resume, overwrite=args.overwrite,
                          progress=False if args.no_progress else None)
        trainer.run()
    except UserError as exc:
        return report_user_error("train.py", exc)
    except RankFailure as exc:  # torchrun: another rank failed, and says why itself
        print(f"train.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
