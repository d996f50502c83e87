"""The checks of a whole config that its schema cannot make: each section against its settings
dataclass, and what one section asks of another (a model named in ``training.run`` must be declared,
a label space must be the competition's, ...). The workflow runs :func:`problems` when it is parsed,
so that a typo fails in seconds, before any job runs; every problem names its key path."""

from __future__ import annotations

import re

from ..blend import NOT_FIT_SETTINGS, BlendSettings
from . import check
from .training import TrainSettings, training_problems

#: Set by the pseudo_label section for rounds after the first, never per model.
PSEUDO_KEYS = {"pseudo_share", "pseudo_noise", "pseudo_soft"}


def merged(defaults: dict, overrides: dict) -> dict:
    """A model's settings: ``training.defaults`` with its own laid over them (sections merged key by key)."""
    result = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            value = {**result[key], **value}
        result[key] = value
    return result


def blend_fit_settings(blend: dict) -> dict:
    """What a blend is fitted by: the ``blend`` section less what chooses what is blended or submitted."""
    return {key: value for key, value in blend.items() if key not in NOT_FIT_SETTINGS}


def _entries(training: dict) -> list[tuple[str, dict]]:
    return [("training.defaults", training["defaults"]), *[(f"training.models.{n}", e) for n, e in training["models"].items()]]


def training_section_problems(training: dict, competition, sample_rate: int) -> list[str]:
    """The training defaults and every model's settings, checked against :class:`TrainSettings` and
    the competition (its label spaces, its catch-all label) and the audio cache's rate."""
    problems = [p for p in check(TrainSettings, training["defaults"], "training.defaults") if not p.endswith("required")]
    problems += training_problems(training["defaults"], "training.defaults")
    for name, entry in training["models"].items():
        path = f"training.models.{name}"
        problems += check(TrainSettings, entry, path) if "architecture" in entry else [f"{path}.architecture: required"]
        problems += training_problems(merged(training["defaults"], entry), path, own=entry)
    for path, entry in _entries(training):
        for key in sorted(PSEUDO_KEYS & set(entry)):
            problems.append(f"{path}.{key}: set by pseudo_label.share, .silence_as_noise and .soft, not here")
        if "sample_rate" in (entry.get("features") or {}):  # one rate: the cache's, which the features read
            problems.append(f"{path}.features.sample_rate: the features are computed at the audio cache's rate, "
                            f"audio.sample_rate ({sample_rate} Hz here): remove this key and set "
                            "audio.sample_rate instead")  # fmt: skip
        space = entry.get("label_space")
        if space is not None and space not in competition.target_spaces:
            problems.append(f"{path}.label_space: {space!r} is not one of {competition.slug}'s label spaces "
                            f"({', '.join(competition.target_spaces)})")  # fmt: skip
        if entry.get("unknown_share") is not None and competition.catch_all_label is None:
            problems.append(f"{path}.unknown_share: {competition.slug} has no catch-all ('unknown') label; set it to null")
    unknown = [name for name in training["run"] if name not in training["models"]]
    if unknown:
        problems.append(f"training.run: {unknown} are not under training.models ({', '.join(training['models'])})")
    return problems


def blend_section_problems(blend: dict, models: list[str], declared: dict) -> list[str]:
    """The blend settings (:class:`BlendSettings`, its registry's candidates), and its names against
    the models: ``models`` run, ``declared`` under training.models."""
    problems = check(BlendSettings, blend_fit_settings(blend), "blend")
    methods = ["auto", *blend["candidates"], *models, *blend["external"]]
    if blend["method"] not in methods:
        problems.append(f"blend.method: {blend['method']!r} is not one of {', '.join(methods)}")
    if blend["across_rounds"]:  # earlier rounds' models join a blend as <model>_round<q>
        clash = [name for name in [*models, *blend["external"]] if re.fullmatch(r".+_round\d+", name)]
        if clash:
            problems.append(f"training.run / blend.external: {clash} end in _round<q>, which is how "
                            "blend.across_rounds names earlier rounds' models in a blend: rename them")  # fmt: skip
    overlap = sorted(set(blend["external"]) & set(declared))
    if overlap:
        problems.append(f"blend.external: {overlap} are also models under training.models: give a teammate's "
                        "predictions a name of its own")  # fmt: skip
    return problems


def problems(config: dict, competition, sample_rate: int) -> list[str]:
    """Every problem of a schema-validated config (defaults filled), each naming its key path."""
    training = config["training"]
    return training_section_problems(training, competition, sample_rate) + blend_section_problems(
        config["blend"], training["run"], training["models"])  # fmt: skip
