"""Small checks shared by every typed options object: unknown keys and bad values
become ValueErrors that name the key and say what is valid."""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name most like `name`, ignoring case (so `dataroot_gt` finds `dataroot_GT`)."""
    valid = list(valid)
    by_lower = {v.lower(): v for v in valid}
    match = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def check_keys(section: str, given: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise for the first key of `given` that is not in `valid`, suggesting the closest one."""
    valid = list(valid)
    for key in given:
        if key not in valid:
            hint = closest(key, valid)
            did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
            raise ValueError(f"{section}.{key}: unknown key{did_you_mean}; valid keys: {', '.join(valid)}")


def check_choice(key: str, value: Any, valid: Iterable[Any]) -> Any:
    valid = list(valid)
    if value not in valid:
        hint = closest(value, [str(v) for v in valid]) if isinstance(value, str) else None
        did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
        raise ValueError(f"{key}: {value!r} is not valid{did_you_mean}; valid values: {', '.join(map(str, valid))}")
    return value


def check_int(key: str, value: Any, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{key}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key}: must be >= {minimum}, got {value}")
    return value


def check_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "-inf" / "1e-3" as strings
            except ValueError:
                pass
        raise ValueError(f"{key}: expected a number, got {value!r}")
    return float(value)


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


def section(raw: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
    """`raw[key]` as a dict (empty when absent or null); `where` prefixes the key in the error."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}{key}: expected a mapping of keys, got {value!r}")
    return dict(value)
