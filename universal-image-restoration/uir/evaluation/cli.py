"""What the command-line entry points share: which exceptions carry a message for the user, and
how such a message is reported ("prog: error: message" on stderr, no traceback, exit code 2)."""
from __future__ import annotations

import sys
from typing import Callable

from uir.data.paired import DataError
from uir.evaluation.run_folder import RunFolderError
from uir.models.checkpoint import CheckpointError
from uir.options.loader import OptionsError

USER_ERRORS = (OptionsError, DataError, CheckpointError, RunFolderError)
EXIT_USER_ERROR = 2


def report_user_error(prog: str, error: BaseException | str) -> int:
    """Print `prog: error: <error>` on stderr; returns the exit code for it."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR


def run_script(main: Callable[[], object], prog: str) -> int:
    """The exit code of a script's `main()`: 0, or a reported USER_ERRORS exception."""
    try:
        main()
    except USER_ERRORS as exc:
        return report_user_error(prog, exc)
    return 0
