"""Settings dataclasses built from config sections, checked key by key.

A settings dataclass is the one place its defaults live. :func:`check` validates a config section
against it — unknown keys, types, allowed values (``Literal``), bounds (a field's ``metadata``) and
nested sections — and names every problem by its key path, e.g. ``training.models.lenet.lr``. The
workflow runs it when it is parsed, so a typo fails before any job starts; :func:`from_section`
runs it again in the job, for code that is called without the workflow.

The settings themselves live in this package's modules (:mod:`.training`: what a training job is
told), below the code that reads them, and import no torch: the workflow checks them when parsed.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, field, fields
from types import UnionType

from ..errors import ExplainedError


class SettingsError(ExplainedError, ValueError):
    """Settings that do not fit their dataclass; the message names each key path and what it takes."""


def bounded(default, minimum=None, maximum=None, above=None, below=None, **kwargs):
    """A dataclass field with bounds: ``minimum``/``maximum`` inclusive, ``above``/``below`` exclusive."""
    bounds = {k: v for k, v in dict(minimum=minimum, maximum=maximum, above=above, below=below).items() if v is not None}
    return field(default=default, metadata={"bounds": bounds, **kwargs})


def nested(cls):
    """A dict field that is a section of its own, checked against ``cls`` (stored as a plain dict)."""
    return field(default_factory=dict, metadata={"section": cls})


def _describe(kind) -> str:
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return " | ".join(map(str, typing.get_args(kind)))
    if origin in (typing.Union, UnionType):
        return " or ".join(_describe(k) for k in typing.get_args(kind))
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string",
            dict: "a mapping", tuple: "a list", list: "a list"}.get(kind, str(kind))  # fmt: skip


def _fits(value, kind) -> bool:
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return value in typing.get_args(kind) and type(value) is type(next(iter(typing.get_args(kind)), value))
    if origin in (typing.Union, UnionType):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if origin in (tuple, list) or kind in (tuple, list):
        return isinstance(value, (list, tuple))
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


def _bounds_problem(value, bounds: dict) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    checks = {"minimum": (lambda b: value >= b, ">="), "maximum": (lambda b: value <= b, "<="),
              "above": (lambda b: value > b, ">"), "below": (lambda b: value < b, "<")}  # fmt: skip
    failed = [f"{sign} {bound}" for name, bound in bounds.items() for ok, sign in [checks[name]] if not ok(bound)]
    return f"must be {' and '.join(failed)}" if failed else None


def check(cls, values, path: str) -> list[str]:
    """Every problem of ``values`` as settings of ``cls``, each naming its key path; [] when it fits."""
    if not isinstance(values, dict):
        return [f"{path}: expected a mapping of settings, got {values!r}"]
    hints = typing.get_type_hints(cls, include_extras=False)
    known = {f.name: f for f in fields(cls)}
    problems = []
    for key in sorted(set(values) - set(known)):
        problems.append(f"{path}.{key}: unknown setting; known: {', '.join(sorted(known))}")
    for name, spec in known.items():
        where = f"{path}.{name}"
        if name not in values:
            if spec.default is MISSING and spec.default_factory is MISSING:
                problems.append(f"{where}: required")
            continue
        value = values[name]
        if "section" in spec.metadata:
            problems += check(spec.metadata["section"], value, where)
            continue
        if not _fits(value, hints[name]):
            problems.append(f"{where}: {value!r} is not {_describe(hints[name])}")
            continue
        bound = _bounds_problem(value, spec.metadata.get("bounds", {}))
        if bound:
            problems.append(f"{where}: {value!r} {bound}")
        allowed = spec.metadata.get("choices")
        items = value if isinstance(value, (list, tuple)) else [value]  # a list's items each
        wrong = [item for item in items if allowed is not None and item not in allowed()]
        if wrong:
            what = f"{wrong[0]!r}" if wrong == [value] else f"{wrong} of {value!r}"
            problems.append(f"{where}: {what} is not one of {', '.join(sorted(allowed()))}")
    return problems


def raise_problems(problems: list[str], fix: str = "Fix the settings (config/config.yaml explains every key).") -> None:
    if problems:
        raise SettingsError("invalid settings:\n  - " + "\n  - ".join(problems) + f"\n{fix}")


def from_section(cls, values: dict, section: str):
    """``cls(**values)``, after :func:`check`: a bad key or value is a :class:`SettingsError` naming it."""
    raise_problems(check(cls, values, section))
    return cls(**values)


def _number_like(text: str):
    """A string from a nested ``--config`` value as what YAML makes of it, when that is not a string."""
    import yaml

    for number in (int, float):  # before YAML: PyYAML reads 1e-3 (no dot) as a string
        try:
            return number(text)
        except ValueError:
            pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (bool, int, float)) or value is None else text


def coerce_cli_strings(value, schema: dict | None):
    """``value`` with the strings that nested ``--config`` overrides leave behind turned into numbers,
    booleans and nulls where ``schema`` does not ask for a string.

    Snakemake parses ``--config folds='{n_folds: 10}'`` with YAML's BaseLoader, which keeps every
    nested scalar a string ('10'); the schema would refuse it. Where the schema is silent (free-form
    sections such as a model's settings), anything YAML reads as a number, boolean or null is taken so.
    """
    schema = schema or {}
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        extra = extra if isinstance(extra, dict) else None
        return {k: coerce_cli_strings(v, properties.get(k, extra)) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_cli_strings(v, schema.get("items")) for v in value]
    if not isinstance(value, str):
        return value
    kinds = schema.get("type")
    kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
    if "enum" in schema and value in schema["enum"]:
        return value
    if kinds and kinds <= {"string"}:
        return value
    return _number_like(value)
