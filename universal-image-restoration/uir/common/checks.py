"""Value checks shared by every options block: each takes the key (as the user wrote it, e.g.
`sampler.order`) and the raw value, and returns the value normalised or raises a ValueError
that names the key and says what is valid.

`check_*` functions check one value now; the lower-case factories (`integer(minimum=1)`,
`number(low=0, open_low=True)`, `choice(...)`, ...) return such a check, to be declared once
on an options field (`uir.common.declared.option`).
"""
from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Check = Callable[[str, Any], Any]


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name most like `name`, ignoring case (so `dataroot_gt` finds `dataroot_GT`)."""
    valid = [str(v) for v in valid]
    by_lower = {v.lower(): v for v in valid}
    match = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def did_you_mean(name: Any, valid: Iterable[str]) -> str:
    hint = closest(name, valid) if isinstance(name, str) else None
    return f" (did you mean {hint!r}?)" if hint else ""


def check_keys(section: str, given: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise for the first key of `given` that is not in `valid`, suggesting the closest one."""
    valid = list(valid)
    for key in given:
        if key not in valid:
            raise ValueError(f"{section}.{key}: unknown key{did_you_mean(key, valid)}; valid keys: {', '.join(valid)}")


def check_choice(key: str, value: Any, valid: Iterable[Any]) -> Any:
    valid = list(valid)
    if isinstance(value, (list, dict)) or value not in valid:
        raise ValueError(f"{key}: {value!r} is not valid{did_you_mean(value, map(str, valid))}; "
                         f"valid values: {', '.join(map(str, valid))}")
    return value


def check_int(key: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{key}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{key}: must be <= {maximum}, got {value}")
    return value


def check_float(key: str, value: Any, *, allow: Iterable[float] = ()) -> float:
    """A number; NaN and +-inf are refused unless listed in `allow` (e.g. `allow=(-math.inf,)`)."""
    if isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 reads "-inf" / "1e-3" as strings
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) and value not in tuple(allow):
        allowed = f" or {' / '.join(str(a) for a in allow)}" if tuple(allow) else ""
        raise ValueError(f"{key}: must be a finite number{allowed}, got {value}")
    return value


def check_range(key: str, value: float, low: float | None = None, high: float | None = None, *,
                open_low: bool = False, open_high: bool = False) -> float:
    """`value` within [low, high] (either end open, either absent), in the project's message style."""
    below = low is not None and (value <= low if open_low else value < low)
    above = high is not None and (value >= high if open_high else value > high)
    if below or above:
        if high is None:
            raise ValueError(f"{key}: must be {'>' if open_low else '>='} {low:g}, got {value}")
        if low is None:
            raise ValueError(f"{key}: must be {'<' if open_high else '<='} {high:g}, got {value}")
        brackets = ("(" if open_low else "[") + f"{low:g}, {high:g}" + (")" if open_high else "]")
        raise ValueError(f"{key}: must lie in {brackets}, got {value}")
    return value


def check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    return value


_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def check_device(key: str, value: Any) -> str:
    """`auto`, `cpu`, `cuda` or `cuda:N`."""
    if not isinstance(value, str) or not _DEVICE_PATTERN.match(value):
        raise ValueError(f"{key}: {value!r} is not valid; valid values: auto, cpu, cuda, cuda:N")
    return value


# ---- checks to declare on fields ------------------------------------------------------------


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    return lambda key, value: check_int(key, value, minimum=minimum, maximum=maximum)


def number(low: float | None = None, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False, allow: Iterable[float] = ()) -> Check:
    """A finite number in a range; `allow` lists infinities that are valid too."""
    allow = tuple(allow)

    def check(key: str, value: Any) -> float:
        value = check_float(key, value, allow=allow)
        return value if value in allow else check_range(key, value, low, high, open_low=open_low, open_high=open_high)

    return check


def choice(valid: Iterable[Any] | Callable[[], Iterable[Any]]) -> Check:
    return lambda key, value: check_choice(key, value, valid() if callable(valid) else valid)


def boolean(key: str, value: Any) -> bool:
    return check_bool(key, value)


def device_name(key: str, value: Any) -> str:
    return check_device(key, value)


def optional(check: Check) -> Check:
    """`check`, letting None (YAML `~`) through."""
    return lambda key, value: None if value is None else check(key, value)


def text(key: str, value: Any) -> str | None:
    """A string (numbers read as text); None or blank is None."""
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        out = str(value)
        return out if out.strip() else None
    raise ValueError(f"{key}: expected a string or ~ (null), got {value!r}")


def not_a_file(path: str | os.PathLike) -> str:
    """How a path that is not a regular file is described: "does not exist", "is a directory", ..."""
    if not os.path.lexists(path):
        return "does not exist"
    if os.path.isdir(path):
        return "is a directory"
    if not os.path.exists(path):
        return "is a broken symbolic link"
    return "is not a regular file (a device, pipe or socket)"


def file_path(key: str, value: Any) -> str | None:
    """A file or folder path with `~` expanded; None or blank is None."""
    out = text(key, value)
    return os.path.expanduser(out) if out is not None else None


# A file or folder name holds at most 255 bytes on the usual file systems (ext4, XFS, btrfs, APFS).
NAME_MAX_BYTES = 255
# What a run adds to the names it makes files of: a run's name also names
# `.<name>.discarded-<pid>-<start>` beside its folder (a pid has at most 7 digits on Linux, a
# process start time at most 20); a label names `<label>_nfe<N>` (N at most 100000,
# samplers.options.MAX_STEPS).
NAME_RESERVED_BYTES = len("..discarded-4194304-18446744073709551615")
LABEL_RESERVED_BYTES = len("_nfe100000")
# No name or label may hold a control character (NUL, CR, LF, tab, ...), a Unicode line or
# paragraph separator, or a lone surrogate: they break file names, logs and tables.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _fits_a_file_name(key: str, value: str, reserved: int, what: str) -> str:
    """`value`, refused when it holds an unprintable character or is too long to be part of a file
    name with `reserved` more bytes."""
    bad = _UNPRINTABLE.search(value)
    if bad:
        raise ValueError(f"{key}: {value!r} holds the character U+{ord(bad.group()):04X} at position {bad.start()}; "
                         f"{what} may not hold control characters (NUL, CR, LF, ...) or line separators")
    size = len(value.encode("utf-8"))
    if size > NAME_MAX_BYTES - reserved:
        raise ValueError(f"{key}: {value[:24]!r}... is {size} bytes long (UTF-8); {what} must be at most "
                         f"{NAME_MAX_BYTES - reserved} bytes (a file name holds {NAME_MAX_BYTES}, and the run adds up "
                         f"to {reserved})")
    return value


def folder_name(key: str, value: Any) -> str:
    """A plain name that becomes a folder of the results: no path separators, nothing unprintable,
    short enough for the folders made from it."""
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ValueError(f"{key}: {value!r} is not a plain name (it becomes a folder name; no slashes)")
    return _fits_a_file_name(key, value, NAME_RESERVED_BYTES, "a name")


def label_text(key: str, value: Any) -> str | None:
    """A sweep point's label (text, None when blank): nothing unprintable, and short enough for
    the folder `<label>_nfe<N>` it names."""
    out = text(key, value)
    return None if out is None else _fits_a_file_name(key, out, LABEL_RESERVED_BYTES, "a label")


def names(*, allow_empty: bool = False, item: Check | None = None) -> Check:
    """A name or a list of distinct names, as a tuple; each name checked by `item`."""

    def check(key: str, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v for v in items):
            raise ValueError(f"{key}: expected a name or a list of names, got {value!r}")
        if not items and not allow_empty:
            raise ValueError(f"{key}: the list is empty")
        return unique(key, tuple(item(key, v) if item else v for v in items))

    return check


def unique(key: str, items: tuple) -> tuple:
    """`items`, refusing one that appears twice."""
    seen: set = set()
    for x in items:
        if x in seen:
            raise ValueError(f"{key}: {x!r} appears twice")
        seen.add(x)
    return items
