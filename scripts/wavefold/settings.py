"""Settings dataclasses built from config sections, with a clear error for a misspelt key."""

from __future__ import annotations

from dataclasses import fields


def from_section(cls, values: dict, section: str):
    """``cls(**values)``, refusing keys ``cls`` does not have, naming the config section and the known keys."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {section} settings {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)
