"""The house's floors: every import inside `uir` runs downward (or stays inside its own package).

Bottom to top: common; sde, precision; samplers, models, data, metrics; runtime; restoration,
tiling; options; evaluation, training; benchmark, reporting; api. A module may import its own package and any
package on a lower floor, never one on its own floor or above.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "universal-image-restoration" / "uir"
FLOORS = [
    {"common"},
    {"sde", "precision"},
    {"samplers", "models", "data", "metrics"},
    {"runtime"},
    {"restoration", "tiling"},
    {"options"},
    {"evaluation", "training"},
    {"benchmark", "reporting"},
    {"api"},
]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}


def imported_uir_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every `uir.*` import, module-level or inside functions."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "uir" else [f"uir.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names if n.startswith("uir")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("uir")]
    return found


def part_of(module: str) -> str | None:
    """The first-level part of `uir.x.y` ("x"), or None for `uir` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        own = relative.parts[0].removesuffix(".py") if relative.parts[0] != "__init__.py" else None
        if own is None:
            continue
        for line, module in imported_uir_modules(path.read_text(encoding="utf-8")):
            target = part_of(module)
            if target is None or target == own:
                continue
            if FLOOR[target] >= FLOOR[own]:
                problems.append(f"uir/{relative.as_posix()}:{line} imports {module} (floor {FLOOR[target]} "
                                f">= its own floor {FLOOR[own]})")
    return problems


def test_every_part_of_the_package_has_a_floor():
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.name != "__init__.py")}
    assert parts <= set(FLOOR), f"give these a floor in FLOORS: {sorted(parts - set(FLOOR))}"


def test_no_import_runs_upward():
    assert upward_imports() == []


def test_the_checker_sees_an_upward_import():
    source = "from uir.evaluation import run\nimport uir.options.schema\nfrom uir import sde\n"
    assert imported_uir_modules(source) == [(1, "uir.evaluation"), (2, "uir.options.schema"), (3, "uir.sde")]
    assert FLOOR[part_of("uir.evaluation")] > FLOOR["options"] > FLOOR[part_of("uir.sde.irsde")]
