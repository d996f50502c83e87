"""The scores every layer computes, written once: cross-entropy (categorical and per label) and lwlrap.

Numpy only, so that the blend, the training loop and the competitions' scorers read the same
definitions (a training curve's lwlrap is the one Kaggle's scorer computes, to rounding).
"""

from __future__ import annotations

import numpy as np

#: Probabilities are clipped to [EPS, 1 - EPS] before a logarithm (the notebook's, wavefold.kernel.portable.blend.EPS,
#: is the same: tests/test_kernel.py).
EPS = 1e-7


def log_loss(probabilities: np.ndarray, y: np.ndarray, eps: float = EPS) -> float:
    """Cross-entropy of label numbers ``y``; of multi-hot ``y``, the mean binary cross-entropy."""
    if y.ndim == 2:
        return binary_cross_entropy(probabilities, y, eps)
    return float(-np.log(np.clip(probabilities[np.arange(len(y)), y], eps, None)).mean())


def binary_cross_entropy(probabilities: np.ndarray, y: np.ndarray, eps: float = EPS) -> float:
    """The mean over every (row, label) of the binary cross-entropy of multi-hot (or soft) ``y``."""
    p = np.clip(probabilities, eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def lwlrap_rows(probabilities: np.ndarray, truth: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Each row's share of lwlrap, so that their mean over the rows is lwlrap on them.

    Row i's value is the sum, over its true labels j, of the precision at j (true labels scored at
    least as high as j, over all labels scored at least as high: ties count against, as scikit-learn's
    label ranking average precision counts them), times rows / (true labels of all rows). A row
    without a true label is worth 0 and weighs nothing. Chunked: (rows, labels, labels) at once would
    not fit for a large table."""
    scores, truth = np.asarray(probabilities, dtype=np.float64), np.asarray(truth) > 0
    sums = np.zeros(len(scores))
    for start in range(0, len(scores), chunk):
        s, t = scores[start : start + chunk], truth[start : start + chunk]
        at_least = s[:, None, :] >= s[:, :, None]  # [i, j, k]: label k scored at least as high as label j
        rank = at_least.sum(2)
        hits = (at_least & t[:, None, :]).sum(2)
        sums[start : start + chunk] = np.where(t, hits / rank, 0.0).sum(1)
    total = truth.sum()
    return sums * len(scores) / total if total else sums


def lwlrap(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Label-weighted label-ranking average precision of multi-hot ``truth`` (rows without a label weigh
    nothing; NaN when no row has one)."""
    if not (np.asarray(truth) > 0).any():
        return float("nan")
    return float(lwlrap_rows(probabilities, truth).mean())
