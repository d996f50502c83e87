"""What a finished training job writes: model, out-of-fold probabilities, learning curve, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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
    by_label = space.fold(probabilities)
    truth = np.array([space.labels.index(space.class_labels[c]) for c in targets], dtype=int)
    for path in (paths.model, paths.oof, paths.curve, paths.metrics):
        path.parent.mkdir(parents=True, exist_ok=True)
    classifier.save(model, settings, data.label_space, paths.model)
    table = classifier.probability_table(ids, by_label, space.labels, "id", fold)
    table.to_csv(paths.oof, index=False, float_format="%.6g")
    pd.DataFrame(curve).to_csv(paths.curve, index=False)
    predicted = by_label.argmax(1)
    per_class_metrics(truth, predicted, prior, space.labels).to_csv(paths.metrics, index=False)
    return {"fold_accuracy": float((predicted == truth).mean()), "epochs": len(curve)}
