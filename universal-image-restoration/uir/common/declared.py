"""Options blocks declared once, as frozen dataclasses.

A block's fields are the only place its keys, defaults, checks and help live:

    @dataclass(frozen=True)
    class SDEBlock:
        T: int = option(100, check=integer(minimum=1), help="number of IR-SDE steps")
        eps: float = option(0.005, check=number(0, 1, open_low=True, open_high=True))

    read(SDEBlock, {"T": 50}, "sde")   # -> SDEBlock(T=50, eps=0.005)
    to_dict(block)                     # -> {"T": 50, "eps": 0.005}

`read` does what every block needs: unknown keys (with the closest valid one), required keys,
each field's check (which names the key, e.g. `sde.T`), nested blocks (`block=`), lists of
blocks (`items=`), mappings of named blocks (`keyed=`), and blocks whose keys sit at the
parent's level (`flatten=True`), and a second name for a key (`alias=`, e.g. the reference's
`lr_G` for `lr`: either may be written, not both). Rules that relate several fields go in the block's
`__post_init__`. Every error is a ValueError naming the key.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from uir.common.checks import Check, check_keys

T = TypeVar("T")
B = TypeVar("B", bound="Block")
MISSING = dataclasses.MISSING


def option(default: Any = MISSING, *, check: Check | None = None, help: str = "", flag: str | None = None,
           nargs: str | None = None, metavar: str | None = None, factory: Any = None, missing: str | None = None,
           block: type | None = None, items: type | None = None, keyed: str | None = None, flatten: bool = False,
           null_is_default: bool = False, alias: str | None = None) -> Any:
    """A declared field.

    default / factory   the default (a field without either is required; `missing` says what to set)
    check               `check(key, value) -> value`, raising ValueError (uir.common.checks)
    help                one line of help (options files, errors and the command line's --help)
    flag                the command-line flag that sets it (shown in errors). A boolean's flag takes
                        no value and sets true, or false when it starts with `--no-`; any other
                        flag takes its value(s) as YAML, checked as the key's value
    nargs, metavar      the flag's argparse `nargs` ("+": a list; "?": a value or true) and metavar
    block               the field is a nested block of this class (a mapping in YAML)
    items               a list of blocks of this class
    keyed               with `items`: a mapping of name -> block; the name goes to the block's field `keyed`
    flatten             the nested block's keys sit at this block's level
    null_is_default     `key: ~` means the default (otherwise None goes to the check)
    alias               another name the key may be written under (`to_dict` writes the field's own)
    """
    metadata = {"check": check, "help": help, "flag": flag, "nargs": nargs, "metavar": metavar, "missing": missing,
                "block": block, "items": items, "keyed": keyed, "flatten": flatten, "null_is_default": null_is_default,
                "alias": alias}
    if factory is None and default is MISSING and (block is not None) and missing is None:
        factory = block
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _declared(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def keys_of(cls: type) -> list[str]:
    """Every key a block of `cls` accepts, flattened blocks' keys included."""
    out: list[str] = []
    for f in _declared(cls):
        out += keys_of(f.metadata["block"]) if f.metadata.get("flatten") else [f.name]
        out += [f.metadata["alias"]] if f.metadata.get("alias") else []
    return out


def flagged(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """(dotted key, field) of every option of `cls` that has a command-line flag, nested and
    flattened blocks included, in declaration order."""
    out: list[tuple[str, dataclasses.Field]] = []
    for f in _declared(cls):
        meta = f.metadata
        if meta.get("flatten"):
            out += flagged(meta["block"], prefix)
        elif meta.get("block") is not None:
            out += flagged(meta["block"], f"{prefix}{f.name}.")
        elif meta.get("flag"):
            out.append((prefix + f.name, f))
    return out


def _aliased(f: dataclasses.Field, raw: Mapping[str, Any], where: str) -> tuple[str, Mapping[str, Any]]:
    """The name `f` is written under in `raw` (its own, or its alias) and `raw` seen under f's name."""
    alias = f.metadata.get("alias")
    if not alias or alias not in raw:
        return f.name, raw
    if f.name in raw:
        at = f"{where}." if where else ""
        raise ValueError(f"{at}{alias} and {at}{f.name}: both set ({raw[alias]!r}, {raw[f.name]!r}); they are one "
                         f"setting ({alias} is its other name): give one")
    return alias, {**raw, f.name: raw[alias]}


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _shown(key: str, f: dataclasses.Field) -> str:
    return f"{key} ({f.metadata['flag']})" if f.metadata.get("flag") else key


def _read_value(f: dataclasses.Field, value: Any, key: str) -> Any:
    meta = f.metadata
    if meta.get("block") is not None:
        return read(meta["block"], value, key)
    if meta.get("keyed") is not None:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key}: expected a mapping of named blocks, got {value!r}")
        return tuple(read(meta["items"], value[k], f"{key}.{k}", **{meta["keyed"]: str(k)})
                     for k in sorted(value, key=str))
    if meta.get("items") is not None:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list of mappings, got {value!r}")
        return tuple(read(meta["items"], item, f"{key}[{i}]") for i, item in enumerate(value))
    check = meta.get("check")
    return check(_shown(key, f), value) if check is not None else value


def read(cls: type[T], raw: Any, where: str = "", **given: Any) -> T:
    """A `cls` block from the raw mapping `raw` found at `where` (e.g. "sampler"; "" for the top
    level). `given` sets fields that do not come from the mapping (e.g. a block's own name)."""
    label = where or "options"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{label}: expected a mapping of keys, got {raw!r}")
    check_keys(label, raw, [k for k in keys_of(cls) if k not in given])
    values: dict[str, Any] = dict(given)
    for f in _declared(cls):
        if f.name in given:
            continue
        name, raw_f = _aliased(f, raw, where)
        key = f"{where}.{name}" if where else name
        meta = f.metadata
        if meta.get("flatten"):
            inner = meta["block"]
            values[f.name] = read(inner, {k: v for k, v in raw.items() if k in keys_of(inner)}, where)
            continue
        value = raw_f.get(f.name)
        if f.name not in raw_f or (value is None and (meta.get("null_is_default") or _is_required(f)
                                                    or meta.get("block") is not None or f.default is None)):
            if _is_required(f):
                hint = f"; {meta['missing']}" if meta.get("missing") else ""
                raise ValueError(f"{_shown(key, f)}: not set{hint}")
            continue
        values[f.name] = _read_value(f, value, key)
    block = cls(**values)
    object.__setattr__(block, "given_keys", frozenset(raw))  # what the mapping set (not a field)
    return block


def to_dict(block: Any) -> dict[str, Any]:
    """A block as a plain YAML-ready mapping, in the layout `read` takes (it reads back equal)."""
    out: dict[str, Any] = {}
    for f in _declared(type(block)):
        value = getattr(block, f.name)
        meta = f.metadata
        if meta.get("flatten"):
            out.update(to_dict(value))
        elif meta.get("keyed") is not None:
            name_field = meta["keyed"]
            out[f.name] = {getattr(v, name_field): {k: x for k, x in to_dict(v).items() if k != name_field}
                           for v in value}
        else:
            out[f.name] = plain(value)
    return out


def plain(value: Any) -> Any:
    """Blocks (and anything with a `to_dict`) as mappings, tuples as lists, mappings copied: what
    YAML and JSON write."""
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return copy.copy(value)


class Block:
    """Base of a declared block: `Cls.from_dict(raw)`, `block.to_dict()` and `block.with_overrides(...)`,
    all through `read` / `to_dict`. `section` is where the block sits in an options file."""

    section: ClassVar[str] = ""
    given_keys: ClassVar[frozenset] = frozenset()  # on a block made by `read`: the keys its mapping set

    @classmethod
    def from_dict(cls: type[B], raw: Any, where: str | None = None) -> B:
        return read(cls, raw, cls.section if where is None else where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def with_overrides(self: B, where: str | None = None, **changes: Any) -> B:
        """A validated copy with `changes` applied (as if they were written in the file)."""
        return read(type(self), {**to_dict(self), **changes}, self.section if where is None else where)
