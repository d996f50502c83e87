"""The architecture registry: one module per architecture, named like the architecture.

An architecture registers itself with ``@register("name")`` in ``architectures/<name>.py``. The
one-module-per-architecture rule lets the workflow list exactly the file a model's jobs run, so
editing one architecture re-trains only the models built on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch import nn

REGISTRY: dict[str, type[nn.Module]] = {}
INPUT_KINDS = ("logmel", "mfcc", "waveform")
FOLDER = Path(__file__).parent


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        if cls.input_kind not in INPUT_KINDS:
            raise ValueError(f"architecture {name!r}: input_kind {cls.input_kind!r} is not one of {INPUT_KINDS}")
        if not (FOLDER / f"{name}.py").is_file():
            raise ValueError(f"architecture {name!r} must live in architectures/{name}.py")
        REGISTRY[name] = cls
        return cls

    return add
