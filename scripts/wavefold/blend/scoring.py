"""What blend candidates are scored and ranked by: accuracy, balanced accuracy, the competition's own
metric, per fold, and the noise of a difference between two candidates over the folds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def accuracy(probabilities: np.ndarray, y: np.ndarray) -> float:
    """The share of rows whose top label is true (one of a multi-label row's)."""
    if y.ndim == 2:
        return float(y[np.arange(len(y)), probabilities.argmax(1)].mean())
    return float((probabilities.argmax(1) == y).mean())


def balanced_accuracy(probabilities: np.ndarray, y: np.ndarray) -> float:
    """The mean over the classes present of each one's recall: the accuracy on a test set holding every
    class equally often, whatever the mix of the rows scored. A blend cannot raise it by leaning toward
    the class the OOF rows hold most of (here: unknown, ~60% of training, ~20-50% of a test set).
    Multi-label: each label's share of the rows holding it whose top label it is, averaged."""
    predicted = probabilities.argmax(1)
    if y.ndim == 2:
        present = np.flatnonzero(y.sum(0) > 0)
        return float(np.mean([(predicted[y[:, c] > 0] == c).mean() for c in present]))
    return float(np.mean([(predicted[y == c] == c).mean() for c in np.unique(y)]))


#: What ``auto`` ranks the candidates by (``blend.choose_by``; ``auto`` picks one by the shift check).
CHOICE_METRICS = {"accuracy": accuracy, "balanced_accuracy": balanced_accuracy}


#: ``metric``: the competition's own (accuracy unless ``fit_blend`` is given another).
CHOOSE_BY = (*CHOICE_METRICS, "metric", "auto")


def fold_accuracies(probabilities: np.ndarray, y: np.ndarray, folds: np.ndarray, metric=accuracy) -> np.ndarray:
    return np.array([metric(probabilities[folds == f], y[folds == f]) for f in np.unique(folds)])


def fold_std(accuracies: np.ndarray) -> float:
    """The spread of a candidate's accuracy over the folds (0 with a single fold)."""
    return float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0


def paired_noise(gaps: np.ndarray, noise_se: float) -> float:
    """``noise_se`` standard errors of the mean of per-fold gaps between two predictions (0 with one fold)."""
    return float(noise_se * gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else 0.0


def metric_functions(metric: tuple[str, Callable] | None) -> dict[str, Callable]:
    """What candidates are scored and ranked by: accuracy, balanced accuracy and the competition's own."""
    return {**CHOICE_METRICS, **dict([metric] if metric else [])}


def competition_metric(competition) -> tuple[str, Callable] | None:
    """A competition's metric as the blend scores it, where it is not accuracy (already a column)."""
    if competition.metric_name == "accuracy":
        return None
    return competition.metric_name, lambda p, y: float(np.mean(competition.metric_rows(p, y)))


def ranking_metric(choose_by: str, shifted: bool, own_metric: str, multi_label: bool = False) -> str:
    """What a blend ranks its candidates by: ``blend.choose_by``, where ``metric`` is the competition's
    own (``own_metric``) and ``auto`` is balanced accuracy if the shift check finds the test set shifted
    (a multi-label competition's own metric: its ranking metric weighs every label already)."""
    shifted = shifted and not multi_label
    return {"metric": own_metric, "auto": "balanced_accuracy" if shifted else own_metric}.get(choose_by, choose_by)
