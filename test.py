"""Evaluate IR-SDE samplers on paired LQ/GT test sets (the DA-CLIP universal-IR test).

    python test.py -opt=options/mrsampler.yml
    python test.py -opt=options/mrsampler.yml --sampler mrsampler posterior --nfe 5 10 20 \
        --data-root /data/daclip-val --dataset low-light motion-blurry

    torchrun --nproc_per_node=4 test.py -opt=options/mrsampler.yml   # the same run on 4 GPUs

Every flag: `python test.py --help`. Outputs: see uir/evaluation/run_folder.py.
"""
from __future__ import annotations

import logging
import signal
import sys

from tqdm.contrib.logging import logging_redirect_tqdm

from uir.common.cli import report_user_error
from uir.common.errors import UserError
from uir.evaluation import run, to_markdown
from uir.common.distributed import RankFailure
from uir.options import build_arg_parser, load_options, overrides_from_args

EXIT_INTERRUPTED = 130
# The run did not give a result for everything it was asked: some images came out non-finite, a
# disk or folder failed mid-run, or another torchrun rank failed (finished images are kept).
EXIT_INCOMPLETE = 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends the run as Ctrl-C does
    console = logging.StreamHandler()
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%H:%M:%S"))
    uir_logger = logging.getLogger("uir")
    uir_logger.addHandler(console)
    uir_logger.setLevel(logging.INFO)
    try:
        with logging_redirect_tqdm(loggers=[uir_logger]):
            options = load_options(args.opt, overrides_from_args(args))
            result = run(options, source=args.opt)
    except UserError as exc:
        return report_user_error("test.py", exc)
    except RankFailure as exc:  # torchrun: another rank failed, and says why itself
        print(f"test.py: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        print("test.py: interrupted; finished images are kept, rerun with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # a full disk, an unwritable folder met mid-run
        print(f"test.py: I/O error: {exc}; finished images are kept, rerun with --resume to continue", file=sys.stderr)
        return EXIT_INCOMPLETE
    finally:
        uir_logger.removeHandler(console)
        signal.signal(signal.SIGTERM, previous)
    if result is None:  # a torchrun rank other than 0: rank 0 prints the table
        return 0
    print(to_markdown(result.table, result.columns), end="")
    if result.failures:
        print(f"test.py: {len(result.failures)} restoration(s) gave no result (non-finite output), e.g. "
              f"{result.failures[0]}; see the log", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


if __name__ == "__main__":
    sys.exit(main())
