"""What the report scripts share: write, then list the files (notes to stderr); a bad run folder
or an unwritable output is one line on stderr and exit status 2."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from uir.common.cli import report_user_error
from uir.reporting.runs import ReportError


def write_and_list(prog: str, write: Callable[[], Any]) -> int:
    """`write()` returns the report's files (`.notes`, `.all`); print them, one path a line."""
    try:
        files = write()
    except (ReportError, OSError) as exc:
        return report_user_error(prog, exc)
    for note in files.notes:
        print(f"note: {note}", file=sys.stderr)
    for path in files.all:
        print(path)
    return 0


__all__ = ["write_and_list"]
