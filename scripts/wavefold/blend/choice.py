"""Which candidate a blend takes: ``auto`` (the simplest within the fold-to-fold noise of the best CV,
by the registry's complexity), the candidates table it chooses from, and the multi-label policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from ..metrics import log_loss
from .candidates import MODEL_COMPLEXITY, REGISTRY, SINGLE_LABEL_SETTINGS
from .scoring import fold_accuracies, fold_std, paired_noise
from .settings import BlendSettings

log = logging.getLogger(__name__)


def choose_auto(candidates: pd.DataFrame, per_fold: dict[str, np.ndarray], noise_se: float,
                metric: str = "accuracy") -> tuple[str, str]:  # fmt: skip
    """The simplest candidate whose CV ``metric`` (a column of ``candidates``, per fold in ``per_fold``) is
    within ``noise_se`` standard errors of the best one's (paired over folds), ties broken by it; and why,
    in words. ``candidates`` has candidate, kind, log_loss and the metric's column."""
    ranked = candidates.sort_values([metric, "log_loss"], ascending=[False, True], kind="stable")
    best = ranked["candidate"].iloc[0]
    eligible = []
    for row in ranked.itertuples():
        gap = per_fold[best] - per_fold[row.candidate]
        noise = paired_noise(gap, noise_se)
        if gap.mean() <= noise:
            complexity = MODEL_COMPLEXITY if row.kind == "model" else REGISTRY[row.candidate].complexity
            eligible.append((complexity, -getattr(row, metric), row.log_loss, row.candidate, gap.mean(), noise))
    _, _, _, chosen, gap, noise = min(eligible)
    by = "" if metric == "accuracy" else f" by {metric}"
    if chosen == best:
        return chosen, f"{chosen}: the best CV{by}, and no simpler candidate is within the fold-to-fold noise of it"
    return chosen, (
        f"{chosen}: within the fold-to-fold noise of the best CV{by} ({best}, {gap:+.4f} ahead, noise "
        f"{noise_se:g} SE = {noise:.4f}) and simpler, so less fitted to the OOF rows"
    )


def score_candidates(cv_oof: dict[str, np.ndarray], names: list[str], y: np.ndarray, folds: np.ndarray,
                     metrics: dict[str, Callable], chosen_by: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The candidates table (candidate, kind, a column per metric, log_loss, fold_std) of cross-validated
    OOF probabilities ``cv_oof``, and each candidate's per-fold score in ``chosen_by`` (what auto ranks by)."""
    candidates = pd.DataFrame({"candidate": list(cv_oof), "kind": ["model" if c in names else "blend" for c in cv_oof]})
    for metric_name, function in metrics.items():  # accuracy, balanced_accuracy, the competition's: a column each
        candidates[metric_name] = [function(cv_oof[c], y) for c in candidates["candidate"]]
    candidates["log_loss"] = [log_loss(cv_oof[c], y) for c in candidates["candidate"]]
    per_fold = {c: fold_accuracies(cv_oof[c], y, folds) for c in candidates["candidate"]}
    candidates["fold_std"] = [fold_std(per_fold[c]) for c in candidates["candidate"]]
    if chosen_by != "accuracy":  # the choice's per-fold scores in its own metric
        per_fold = {c: fold_accuracies(cv_oof[c], y, folds, metrics[chosen_by]) for c in candidates["candidate"]}
    return candidates, per_fold


def multi_label_settings(settings: BlendSettings) -> BlendSettings:
    """``settings`` without what assumes one label per clip (the registry's single-label-only
    candidates, :data:`.candidates.SINGLE_LABEL_SETTINGS`), each drop logged."""
    kept = tuple(c for c in settings.candidates if not REGISTRY[c].single_label_only)
    dropped = [c for c in settings.candidates if c not in kept]
    dropped += [name for name, (off, _) in SINGLE_LABEL_SETTINGS.items() if getattr(settings, name) != off]
    for name in dropped:
        why = REGISTRY[name].single_label_only if name in REGISTRY else SINGLE_LABEL_SETTINGS[name][1]
        log.warning("blend: %s left out for this multi-label competition: %s", name, why)
    return replace(settings, candidates=kept, **{name: off for name, (off, _) in SINGLE_LABEL_SETTINGS.items()})


def chosen_candidate(candidates: pd.DataFrame, metric: str = "accuracy") -> tuple[str, float]:
    """The chosen blend's name and CV by ``metric`` (the competition's), from a ``candidates.csv`` table."""
    row = candidates[candidates["chosen"]].iloc[0]
    return str(row["candidate"]), float(row[metric])
