"""Hyper-parameter search ('snakemake tune'): Optuna's TPE over one model's settings on a cheap proxy.

The proxy is one fold of the workflow's own folds, a few epochs and a speaker-grouped share of the
training side. Every trial trains on the training side only and is scored on the held-out fold with
the last epoch's weights (epoch_selection: last), so no trial looks at the clips it is scored on
while training. Choosing among trials by that fold does make that fold's later CV a little
optimistic for the tuned model; the README ("Tuning and tracking") says so.

The study lives in an SQLite file beside the outputs. A study is named by everything that makes its
trials comparable (model settings, search space, proxy): a run with the same proxy and a larger
trial budget resumes it, any other change starts a fresh study in the same file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import weights
from .errors import ExplainedError
from .settings.training import TrainSettings, training_problems

log = logging.getLogger(__name__)


class TuneError(ExplainedError, ValueError):
    """A search space or proxy that cannot be searched; the message names the key and the fix."""


@dataclass(frozen=True)
class Dimension:
    """One searched setting: its dotted path in the model's settings and its range or choices."""

    path: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.path, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float):
            return trial.suggest_int(self.path, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high), step=self.step, log=self.log)


def _lookup(settings: dict, path: str):
    value = settings
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def parse_space(space: dict, settings: dict, where: str = "tune.space") -> list[Dimension]:
    """The search space, checked against the model's resolved settings: every key must name a setting
    (``lr``, ``augment.noise_probability``, ``params.channels``) and give low < high or choices."""
    if not space:
        raise TuneError(f"{where} is empty: give at least one setting to search, e.g. lr: {{low: 0.0003, high: 0.01}}")
    dimensions = []
    for path, spec in space.items():
        try:
            _lookup(settings, path)
        except KeyError:
            if not path.startswith("params."):  # an architecture parameter may be left at its default
                raise TuneError(
                    f"{where}.{path}: not a setting of this model. Settings are named by their path in "
                    "training.defaults, e.g. lr, augment.noise_probability, features.n_mels, params.channels"
                ) from None
        if not isinstance(spec, dict):
            raise TuneError(
                f"{where}.{path}: give {{low: ..., high: ...}} (optionally log, step) or {{choices: [...]}}"
            )
        if "choices" in spec:
            if set(spec) != {"choices"} or not spec["choices"]:
                raise TuneError(f"{where}.{path}: choices stand alone and list at least one value")
            dimensions.append(Dimension(path, choices=tuple(spec["choices"])))
            continue
        unknown = set(spec) - {"low", "high", "log", "step"}
        if unknown or "low" not in spec or "high" not in spec:
            raise TuneError(f"{where}.{path}: takes low, high (numbers, low < high) and optionally log, step")
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
            raise TuneError(f"{where}.{path}: low ({low!r}) and high ({high!r}) must be numbers with low < high")
        if spec.get("log") and low <= 0:
            raise TuneError(f"{where}.{path}: a log scale needs low > 0 (got {low})")
        dimensions.append(Dimension(path, low, high, bool(spec.get("log", False)), spec.get("step")))
    return dimensions


def with_values(settings: dict, values: dict) -> dict:
    """``settings`` with each dotted path of ``values`` set (a deep copy)."""
    merged = copy.deepcopy(settings)
    for path, value in values.items():
        *parents, last = path.split(".")
        target = merged
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return merged


def trial_settings(settings: dict, values: dict, epochs: int) -> TrainSettings:
    """A trial's complete, checked settings: the model's, the trial's values, the proxy's epochs, and
    the last epoch kept (the held-out fold is only scored, never used to choose)."""
    merged = with_values(settings, values)
    merged.update(epochs=epochs, epoch_selection="last", patience=0)
    if "params.name" in values:  # a choice of backbone: its own pretrained weights (fetched for each choice)
        try:
            pretrained = weights.for_backbone(merged["params"].get("pretrained"), values["params.name"], "tune")
        except ValueError as error:
            raise TuneError(str(error)) from None
        merged["params"]["pretrained"] = pretrained
    problems = training_problems(merged, "tune")
    if problems:
        raise TuneError("a trial's settings are invalid:\n  - " + "\n  - ".join(problems))
    return TrainSettings.from_config(merged)


def study_name(model: str, settings: dict, space: dict, proxy: dict) -> str:
    """The study's name: the model and a digest of what makes its trials comparable."""
    blob = json.dumps({"settings": settings, "space": space, "proxy": proxy}, sort_keys=True, default=str)
    return f"{model}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def subset_training_side(data, speakers: pd.Series, share: float, seed: int):
    """The fold's data with only ``share`` of the training side's speakers (and their offline
    variants) left to train on; the held-out fold is untouched, so trials are scored on all of it."""
    if share >= 1:
        return data
    speakers = speakers.to_numpy()
    pool = np.unique(speakers[data.train_rows])
    kept = np.random.default_rng(seed).choice(pool, max(1, int(round(share * len(pool)))), replace=False)
    keep = np.isin(speakers, kept)
    rows = keep[data.train_rows]
    variants = keep[data.variant_clips[data.variant_index]] if len(data.variant_index) else np.zeros(0, bool)
    log.info(
        "proxy: %d of %d training-side speakers (%d of %d clips) train; all %d held-out clips score",
        len(kept), len(pool), int(rows.sum()), len(rows), len(data.val_rows),
    )  # fmt: skip
    return replace(
        data,
        train_rows=data.train_rows[rows],
        train_targets=data.train_targets[rows],
        variant_index=data.variant_index[variants],
        variant_targets=data.variant_targets[variants] if len(variants) else data.variant_targets,
    )


def open_study(storage_path: Path, name: str, seed: int):
    """The study ``name`` in ``storage_path`` (created, or loaded to resume), maximising accuracy.

    A trial left running by a killed job is marked failed after the heartbeat's grace period, so
    that a resumed study neither waits for it nor counts it as done."""
    import optuna

    storage_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9 and works
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{storage_path.resolve()}", heartbeat_interval=30, grace_period=60
        )
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
        optuna.storages.fail_stale_trials(study)
    # Seeded by how far the study got: a resumed study draws new points, not the first ones again.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials), n_startup_trials=5)
    return study


def finished(study) -> list:
    import optuna

    return [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)]


def run_study(study, dimensions: list[Dimension], objective, budget: int) -> int:
    """Run trials until ``budget`` trials have finished (completed or failed); returns how many ran now.

    ``objective(values, trial_number) -> accuracy``. A trial that fails (bad combination, out of memory) is
    recorded as failed with its error, and the search goes on."""
    done = len(finished(study))
    remaining = max(0, budget - done)
    if done:
        log.info(
            "resuming study %s: %d trials finished, %d to run (budget %d)", study.study_name, done, remaining, budget
        )
    else:
        log.info("new study %s: %d trials to run", study.study_name, remaining)

    def optuna_objective(trial):
        values = {d.path: d.suggest(trial) for d in dimensions}
        accuracy = objective(values, trial.number)
        log.info("trial %d: accuracy %.4f with %s", trial.number, accuracy, values)
        return accuracy

    if remaining:
        study.optimize(optuna_objective, n_trials=remaining, catch=(RuntimeError, ValueError, TuneError))
    return remaining


def trials_table(study) -> pd.DataFrame:
    rows = []
    for t in study.trials:
        rows.append({"trial": t.number, "state": t.state.name, "accuracy": t.value, **t.params,
                     "seconds": t.duration.total_seconds() if t.duration else math.nan})  # fmt: skip
    return pd.DataFrame(rows)


def best_fragment(study, model: str, proxy: dict) -> str:
    """The best trial as a config fragment to lay over config/config.yaml (``--configfile``)."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise TuneError(
            f"no trial of study {study.study_name} completed (see logs/tune.log for each failure): "
            "narrow tune.space or fix the model's settings"
        )
    best = max(complete, key=lambda t: t.value)
    overrides = with_values({}, best.params)
    header = (
        f"# wavefold tune: the best of {len(complete)} completed trials of study {study.study_name}\n"
        f"# (trial {best.number}, held-out accuracy {best.value:.4f} on the proxy: fold {proxy['fold']}, "
        f"{proxy['epochs']} epochs, {proxy['train_share']:.0%} of the training speakers).\n"
        "# Use it: snakemake --cores all --configfile config/config.yaml results/tune/best.yaml\n"
    )
    return header + yaml.safe_dump({"training": {"models": {model: overrides}}}, sort_keys=False)
