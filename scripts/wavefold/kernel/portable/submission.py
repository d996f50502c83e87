"""The submission's rows from test probabilities, in the competition's format."""

from __future__ import annotations

import numpy as np

def submission_rows(ids, probabilities: np.ndarray, labels, submission: dict) -> dict[str, list]:
    """The submission's columns: ``top`` — the k most probable labels, space-separated, best first
    (ties: the earlier label); ``scores`` — a column per label."""
    labels = np.asarray(list(labels))
    if submission["kind"] == "top":
        top = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")[:, : submission["k"]]
        return {submission["id_column"]: list(ids), submission["column"]: [" ".join(row) for row in labels[top]]}
    if submission["kind"] == "scores":
        values = np.asarray(probabilities, dtype=np.float64)
        return {submission["id_column"]: list(ids), **{name: values[:, i] for i, name in enumerate(labels)}}
    raise ValueError(f"recipe.json: unknown submission kind {submission['kind']!r}")
