"""How the command-line entry points report a `UserError`: "prog: error: message" on stderr,
no traceback, exit code 2."""
from __future__ import annotations

import sys
from collections.abc import Callable

from uir.common.errors import UserError

EXIT_USER_ERROR = 2


def report_user_error(prog: str, error: BaseException | str) -> int:
    """Print `prog: error: <error>` on stderr; returns the exit code for it."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR


def run_script(main: Callable[[], object], prog: str) -> int:
    """The exit code of a script's `main()`: its integer result (0 when it returns None), or a
    reported UserError."""
    try:
        result = main()
    except UserError as exc:
        return report_user_error(prog, exc)
    return result if isinstance(result, int) else 0
