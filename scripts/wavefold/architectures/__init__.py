"""The architecture registry: one module per architecture, named like the architecture.

An architecture registers itself with ``@register("name")`` in ``architectures/<name>.py``. The
one-module-per-architecture rule lets the workflow list exactly the file a model's jobs run, so
editing one architecture re-trains only the models built on it.

This is the one place architectures are found. :func:`declared` reads the modules without importing
them (no torch: the workflow checks the settings, and lists each job's code, when it is parsed);
:mod:`wavefold.models` imports exactly those modules, which fill :data:`REGISTRY`.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import nn

REGISTRY: dict[str, type[nn.Module]] = {}
INPUT_KINDS = ("logmel", "mfcc", "waveform")
FOLDER = Path(__file__).resolve().parent


def module_of(name: str) -> Path:
    """The module architecture ``name`` lives in (what its models' jobs run)."""
    return FOLDER / f"{name}.py"


def _registered_class(module: Path) -> ast.ClassDef | None:
    """The class of ``module`` decorated ``@register("<the module's name>")``, if any."""
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and getattr(decorator.func, "id", None) == "register"
                    and decorator.args
                    and getattr(decorator.args[0], "value", None) == module.stem
                ):
                    return node
    return None


@lru_cache(maxsize=None)
def declared() -> dict[str, Path]:
    """Every architecture, by name, and its module: those modules of this folder that register a
    class under their own name (``blocks.py`` and other helpers register none)."""
    return {m.stem: m for m in sorted(FOLDER.glob("*.py")) if m.stem != "__init__" and _registered_class(m)}


def parameters(name: str) -> set[str] | None:
    """The hyper-parameters architecture ``name`` takes (its constructor's, less ``n_classes``);
    None when it takes any (``**kwargs``)."""
    found = _registered_class(module_of(name)) if name in declared() else None
    for node in found.body if found else ():
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            if node.args.kwarg is not None:
                return None
            names = [a.arg for a in node.args.args + node.args.kwonlyargs]
            return set(names) - {"self", "n_classes"}
    return set()


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        if cls.input_kind not in INPUT_KINDS:
            raise ValueError(f"architecture {name!r}: input_kind {cls.input_kind!r} is not one of {INPUT_KINDS}")
        if not module_of(name).is_file():
            raise ValueError(f"architecture {name!r} must live in architectures/{name}.py")
        REGISTRY[name] = cls
        return cls

    return add
