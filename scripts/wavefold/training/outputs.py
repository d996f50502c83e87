"""What a finished training job writes: model, out-of-fold probabilities, learning curve, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import lwlrap
from . import classifier


@dataclass
class JobPaths:
    model: Path
    oof: Path
    curve: Path
    metrics: Path
    checkpoint: Path


def per_class_metrics(truth: np.ndarray, predicted: np.ndarray, prior: np.ndarray, labels) -> pd.DataFrame:
    """Recall and precision per label and overall, and ``trained_share``: the label mix training drew."""
    rows = []
    for c, name in enumerate(labels):
        is_true, is_pred = truth == c, predicted == c
        rows.append(
            {
                "label": name,
                "clips": int(is_true.sum()),
                "recall": float((is_pred & is_true).sum() / max(1, is_true.sum())),
                "precision": float((is_pred & is_true).sum() / max(1, is_pred.sum())),
                "trained_share": float(prior[c]),
            }
        )
    accuracy = float((predicted == truth).mean())
    rows.append({"label": "all", "clips": len(truth), "recall": accuracy, "precision": accuracy, "trained_share": 1.0})
    return pd.DataFrame(rows)


def multi_label_metrics(truth: np.ndarray, probabilities: np.ndarray, prior: np.ndarray, labels) -> pd.DataFrame:
    """A multi-label model's per-label recall and precision at probability 0.5, ``clips`` (those that
    hold the label), ``trained_share``; the ``all`` row micro-averaged over every (clip, label)."""
    said, true = probabilities >= 0.5, truth > 0
    rows = []
    for c, name in enumerate(labels):
        hits = int((said[:, c] & true[:, c]).sum())
        rows.append({"label": name, "clips": int(true[:, c].sum()), "recall": hits / max(1, int(true[:, c].sum())),
                     "precision": hits / max(1, int(said[:, c].sum())), "trained_share": float(prior[c])})  # fmt: skip
    hits = int((said & true).sum())
    rows.append({"label": "all", "clips": len(truth), "recall": hits / max(1, int(true.sum())),
                 "precision": hits / max(1, int(said.sum())), "trained_share": 1.0})  # fmt: skip
    return pd.DataFrame(rows)


def write(
    model,
    settings,
    data,
    probabilities: np.ndarray,
    targets: np.ndarray,
    curve: list[dict],
    prior: np.ndarray,
    paths: JobPaths,
    fold: int,
) -> dict:
    """Write the job's outputs; ``probabilities`` are over ``data.label_space`` for the fold's clips then silence."""
    space = data.space
    ids = data.val_ids + data.val_silence["id"].tolist()
    by_label = probabilities if space.multi_label else space.fold(probabilities)
    for path in (paths.model, paths.oof, paths.curve, paths.metrics):
        path.parent.mkdir(parents=True, exist_ok=True)
    classifier.save(model, settings, data.label_space, paths.model)
    table = classifier.probability_table(ids, by_label, space.labels, "id", fold)
    table.to_csv(paths.oof, index=False, float_format="%.6g")
    pd.DataFrame(curve).to_csv(paths.curve, index=False)
    if space.multi_label:  # targets: the clips' label sets; the score: lwlrap, the curve's
        multi_label_metrics(targets, by_label, prior, space.labels).to_csv(paths.metrics, index=False)
        return {"fold_score": lwlrap(by_label, targets), "epochs": len(curve)}
    truth = np.array([space.labels.index(space.class_labels[c]) for c in targets], dtype=int)
    predicted = by_label.argmax(1)
    per_class_metrics(truth, predicted, prior, space.labels).to_csv(paths.metrics, index=False)
    return {"fold_score": float((predicted == truth).mean()), "epochs": len(curve)}
