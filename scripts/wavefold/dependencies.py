"""Which modules of the package a rule runs, read from its script's imports.

Snakemake re-runs a job when its inputs change, but it does not follow a script's imports. So
every rule lists the package modules its script imports, directly or through other modules of
the package, as inputs — derived here from the import statements (read, nothing is imported),
never kept by hand: a new module is never
forgotten, and editing ``labels.py`` re-runs every step that imports it.

Two registries load modules by name, which imports cannot show. Architectures: the registry loads
every ``architectures/<name>.py``, but a model runs only its own, so that editing one architecture
re-trains only the models built on it (:func:`model_modules`). Competitions: a script that loads
one runs the selected competition's module only (``competition`` of :func:`script_modules`).

The tracking package (:data:`OBSERVERS`) reports what a job does to MLflow and changes none of its
files: it is left out of every rule's code but the ``track`` rule's, so that editing how jobs are
tracked re-trains nothing.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from .architectures import declared, module_of

PACKAGE = "wavefold"
ROOT = Path(__file__).resolve().parent  # scripts/wavefold
ARCHITECTURES = frozenset(declared().values())  # one module each (wavefold.architectures finds them)
COMPETITIONS = ROOT / "competitions" / "__init__.py"
OBSERVERS = ROOT / "tracking"


def _module_file(dotted: str) -> Path | None:
    """The file of a package module (``wavefold.x.y`` -> x/y.py or x/y/__init__.py), or None."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file() and len(parts) > 1:
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _dotted(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


#: A line that starts an import statement, with its parenthesised continuation lines.
_IMPORT_LINE = re.compile(r"^[ \t]*((?:from[ \t]+[\w.]+[ \t]+)?import[ \t]+(?:\([^)]*\)[^\n]*|[^\n]*))", re.M)


def import_statements(source: str) -> list[ast.stmt]:
    """The import statements of a module's source, each line that starts one parsed alone: every
    snakemake call reads ~90 modules, and parsing them whole took a quarter of its start (0.3-0.5 s).
    A line that only reads like one (in a docstring) does not parse and is passed over. An import
    written any other way (after ``if x:`` on its line, or across a backslash) would be missed:
    test_dependencies checks that this finds every import ``ast`` finds in each module."""
    statements = []
    for match in _IMPORT_LINE.finditer(source):
        try:
            statements += ast.parse(match.group(1)).body
        except SyntaxError:
            continue
    return statements


@lru_cache(maxsize=None)  # each rule's closure walks the same modules again
def _imported(path: Path) -> frozenset[Path]:
    """The package modules one file imports (each package's __init__ too: Python runs it)."""
    is_package_init = path.name == "__init__.py"
    here = _dotted(path) if path.is_relative_to(ROOT) else ""
    names: set[str] = set()
    for node in import_statements(path.read_text()):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package upwards
                package = here.split(".") if is_package_init else here.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # a submodule, or just a name
    found = set()
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):  # wavefold.a.b also runs wavefold/a/__init__.py
            module = _module_file(".".join(parts[:end]))
            if module is not None:
                found.add(module)
    return frozenset(found)


@lru_cache(maxsize=None)
def _closure(start: Path, skip_architectures: bool, skip_observers: bool = True) -> frozenset[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        for module in _imported(path):
            if skip_architectures and module in ARCHITECTURES:
                continue
            if skip_observers and module.is_relative_to(OBSERVERS):
                continue
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return frozenset(seen)


def _with_competition(modules: frozenset[Path], competition: str | Path | None) -> frozenset[Path]:
    if competition is None or COMPETITIONS not in modules:
        return modules
    own = Path(competition).resolve()
    return modules | {own} | _closure(own, True)


def script_modules(script: str | Path, competition: str | Path | None = None, observers: bool = False) -> list[str]:
    """Every package module ``script`` runs, sorted, as paths (the rule's ``code`` input); with the
    module file of the ``competition`` it loads, if it loads one; the tracking modules only if
    ``observers`` (the rule whose outputs are the tracking)."""
    modules = _closure(Path(script).resolve(), True, not observers)
    return sorted(str(p) for p in _with_competition(modules, competition))


def model_modules(script: str | Path, architecture: str, competition: str | Path | None = None) -> list[str]:
    """The modules a model's job runs: the script's, and of the architectures only the model's own."""
    own = module_of(architecture)
    modules = _closure(Path(script).resolve(), True) | {own} | _closure(own, True)
    return sorted(str(p) for p in _with_competition(modules, competition))
