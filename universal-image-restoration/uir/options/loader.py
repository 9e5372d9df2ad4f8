"""Options files, `--set key.path=value` overrides and the `test.py` command line.

The order is fixed: the YAML file, then every `--set` in the order given, then the
dedicated flags (`--sampler`, `--nfe`, ...). Each flag is declared once, on the option it sets
(`option(flag=..., help=...)`), and the command line is built from those declarations
(`flag_options`), so `test.py --help` lists them with their help. The result is validated once
by `parse_options`.
"""
from __future__ import annotations

import argparse
import copy
import os
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import yaml

from uir.common.checks import not_a_file
from uir.common.declared import flagged
from uir.common.errors import OptionsError
from uir.options.schema import EvalOptions, parse_options
from uir.options.sweep import SweepOptions

T = TypeVar("T")

# The most values an options file (or a --set value) may expand to, an alias counted each time it
# is used: the reference's files hold a few hundred. A few lines of nested aliases ("billion
# laughs") would otherwise expand to billions when the options are written out.
MAX_YAML_VALUES = 100_000
# Deeper nesting than this is refused (PyYAML composes nodes recursively).
MAX_YAML_DEPTH = 100


class YamlTooLarge(yaml.YAMLError):
    """A YAML document that expands to too many values, nests too deeply or refers to itself."""


def _expanded_size(node: yaml.Node) -> int:
    """How many values `node` stands for once its aliases are expanded; YamlTooLarge past
    MAX_YAML_VALUES or MAX_YAML_DEPTH, or for an alias inside the node it names."""
    sizes: dict[int, int] = {}
    inside: set[int] = set()

    def size(n: yaml.Node, depth: int) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        where = f"line {n.start_mark.line + 1}"
        if id(n) in inside:
            raise YamlTooLarge(f"{where}: an alias refers to a value that contains it (a recursive structure)")
        if depth > MAX_YAML_DEPTH:
            raise YamlTooLarge(f"{where}: nested more than {MAX_YAML_DEPTH} levels deep")
        inside.add(id(n))
        children = [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else \
            n.value if isinstance(n, yaml.SequenceNode) else []
        total = 1 + sum(size(c, depth + 1) for c in children)
        inside.discard(id(n))
        if total > MAX_YAML_VALUES:
            raise YamlTooLarge(f"{where}: this value expands to more than {MAX_YAML_VALUES} values (aliases count "
                               f"each time they are used); an options file holds a few hundred")
        sizes[id(n)] = total
        return total

    return size(node, 0)


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key written twice in one mapping (PyYAML keeps the last silently),
    and a document that expands to too much (`_expanded_size`)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.depth > MAX_YAML_DEPTH:  # before Python's own recursion limit
            raise YamlTooLarge(f"line {self.peek_event().start_mark.line + 1}: nested more than {MAX_YAML_DEPTH} "
                               f"levels deep")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _expanded_size(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}: first on line {seen[key]}, again on line {line}",
                    key_node.start_mark)
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep)


def _yaml_error(where: str, exc: yaml.YAMLError) -> OptionsError:
    """One line: PyYAML's messages span several (the context, the problem, the position)."""
    what = "refused" if isinstance(exc, YamlTooLarge) else "not valid YAML"
    return OptionsError(f"{where}: {what}: {' '.join(str(exc).split())}")


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The raw mapping of an options file (safe YAML, keys unique); errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OptionsError(f"-opt: options file {path} {not_a_file(path)}")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except UnicodeDecodeError as exc:
        raise OptionsError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); "
                           f"save the options file as UTF-8") from exc
    except OSError as exc:
        raise OptionsError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from exc
    if raw is None:
        raise OptionsError(f"{path}: the options file is empty")
    if not isinstance(raw, dict):
        raise OptionsError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return raw


def parse_assignment(text: str) -> tuple[str, Any]:
    """`"sampler.order=3"` -> `("sampler.order", 3)`; the value is read as YAML (`[1, 2]`, `~`, `true`)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise OptionsError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. --set sampler.order=3")
    try:
        parsed = yaml.load(value, Loader=_UniqueKeyLoader) if value.strip() else None  # noqa: S506 (safe)
    except yaml.YAMLError as exc:
        raise _yaml_error(f"--set {text!r}: the value", exc) from exc
    return key, parsed


def with_override(raw: Mapping[str, Any], key_path: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with `key_path` (dot-separated) set to `value`; missing sections are created."""
    out = copy.deepcopy(dict(raw))
    node = out
    parts = key_path.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise OptionsError(f"--set {key_path}: {where} holds {child!r}, not a section of keys")
        node = child
    node[parts[-1]] = value
    return out


def _override_sweep(raw: dict[str, Any], key_path: str, value: Any) -> dict[str, Any]:
    """--nfe / --sampler over `sweep.runs`: `--nfe` gives every run those NFEs (labels and `set:`
    kept); `--sampler` replaces the runs by those samplers at every NFE the runs had. Every entry
    is read as without the flag: `--nfe` keeps a malformed one (the schema refuses it), and
    `--sampler` replaces only runs that are valid."""
    sweep = raw.get("sweep")
    if not isinstance(sweep, Mapping) or not isinstance(sweep.get("runs"), list):
        return with_override(raw, key_path, value)
    runs = sweep["runs"]
    if key_path == "sweep.nfe":
        return with_override(raw, "sweep.runs", [{**r, "nfe": value} if isinstance(r, Mapping) else r for r in runs])
    try:
        SweepOptions.from_dict({"runs": runs}, "sweep")
    except ValueError as exc:
        raise OptionsError(f"--sampler replaces sweep.runs, which must be valid first: {exc}") from exc
    nfes = [n for r in runs for n in (r.get("nfe") if isinstance(r.get("nfe"), list) else [r.get("nfe")])]
    rest = {k: v for k, v in sweep.items() if k != "runs"}
    return {**raw, "sweep": {**rest, "samplers": value, "nfe": list(dict.fromkeys(nfes))}}


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(raw)
    for key_path, value in overrides:
        if key_path in ("sweep.samplers", "sweep.nfe"):
            out = _override_sweep(out, key_path, value)
        else:
            out = with_override(out, key_path, value)
    return out


def load_with(parse: Callable[[dict], T], path: str | os.PathLike, overrides: Iterable[tuple[str, Any]] = ()) -> T:
    """Read `path`, apply `(key.path, value)` overrides in order, validate with `parse`.
    A ValueError becomes an OptionsError that names the file."""
    raw = apply_overrides(read_yaml(path), overrides)
    try:
        return parse(raw)
    except OptionsError:
        raise
    except ValueError as exc:
        raise OptionsError(f"{os.fspath(path)}: {exc}") from exc


def load_options(path: str | os.PathLike, overrides: Iterable[tuple[str, Any]] = ()) -> EvalOptions:
    """test.py's options: read `path`, apply overrides, validate. Raises OptionsError."""
    return load_with(parse_options, path, overrides)


# ---- command line ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagOption:
    """A command-line flag and the options key it sets, as the key's declaration says."""

    key: str  # dotted, e.g. "sweep.nfe"
    flag: str  # e.g. "--nfe"
    help: str
    nargs: str | None
    metavar: str | None
    switch: bool | None  # True / False: a flag without value that sets that; None: takes value(s)

    @property
    def dest(self) -> str:
        return self.key.replace(".", "__")

    def value(self, given: Any) -> Any:
        """The key's value from what argparse collected (YAML text, as `--set` reads it)."""
        if self.switch is not None:
            return self.switch
        if given is True:  # `--resume` without a folder
            return True
        if isinstance(given, list):
            return [_yaml_value(self.flag, v) for v in given]
        return _yaml_value(self.flag, given)


def _yaml_value(flag: str, text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise OptionsError(f"{flag} {text!r}: not a valid value ({' '.join(str(exc).split()[:12])})") from exc


def flag_options(cls: type = EvalOptions) -> list[FlagOption]:
    """Every option of `cls` that declares a flag."""
    out = []
    for key, f in flagged(cls):
        meta, flag = f.metadata, f.metadata["flag"]
        switch = None
        if meta.get("nargs") is None:
            if flag.startswith("--no-"):
                switch = False
            elif isinstance(f.default, bool):
                switch = True
        out.append(FlagOption(key, flag, meta.get("help") or "", meta.get("nargs"), meta.get("metavar"), switch))
    return out


def build_arg_parser(prog: str = "test.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate IR-SDE samplers on paired LQ/GT test sets (the DA-CLIP universal-IR test).",
        epilog="Flags override the options file; --set KEY.PATH=VALUE sets any key (before the flags). "
               "Each flag sets the options key shown in brackets; its value is read as YAML and checked as that key's.",
    )
    p.add_argument("-opt", "--opt", dest="opt", required=True, metavar="YML", help="options file (YAML)")
    p.add_argument("--set", dest="set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="set any options key, e.g. --set sampler.order=3 (repeatable; value read as YAML)")
    for o in flag_options():
        help_text = f"{o.help} [{o.key}]"
        if o.switch is not None:
            p.add_argument(o.flag, dest=o.dest, action="store_true", default=None, help=help_text)
        else:
            p.add_argument(o.flag, dest=o.dest, nargs=o.nargs, const=True if o.nargs == "?" else None, default=None,
                           metavar=o.metavar or "VALUE", help=help_text)
    return p


def overrides_from_args(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """`--set` assignments first, then the dedicated flags, as `(key.path, value)` pairs."""
    overrides = [parse_assignment(text) for text in args.set]
    for o in flag_options():
        given = getattr(args, o.dest, None)
        if given is not None:
            overrides.append((o.key, o.value(given)))
    return overrides
