"""Model architectures for keyword spotting, created from one registry by name.

``create_model("bc_resnet", 12, width=8)`` builds BC-ResNet-8. Each architecture lives in
its own module, ``architectures/<name>.py``, and declares the input it takes (``input_kind``):
``logmel`` and ``mfcc`` are (batch, 1, features, frames) made on the device by
:mod:`wavefold.features`; ``waveform`` is (batch, 1, samples). Every model ends in global average
pooling, so the clip length and the number of features can change without touching the model.
"""

from __future__ import annotations

import importlib

from torch import nn

from .architectures import FOLDER, INPUT_KINDS, REGISTRY, declared, register  # noqa: F401 (the registry's API)

# Every architectures/<name>.py registers itself when imported; a new one needs no line here. (The
# workflow gives each model's jobs only its own architecture's module as code: wavefold.dependencies.)
for _name in declared():
    importlib.import_module(f"{__package__}.architectures.{_name}")


def create_model(architecture: str, n_classes: int, /, **params) -> nn.Module:
    """The ``architecture`` with its hyper-parameters; unknown names and parameters are clear errors.
    (Positional: an architecture's own parameter may be called ``name``, timm's model name.)"""
    if architecture not in REGISTRY:
        raise KeyError(f"unknown architecture {architecture!r}; registered: {sorted(REGISTRY)}")
    try:
        return REGISTRY[architecture](n_classes=n_classes, **params)
    except TypeError as error:
        raise TypeError(f"architecture {architecture!r}: {error}") from error


def input_kind(name: str) -> str:
    return REGISTRY[name].input_kind


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

