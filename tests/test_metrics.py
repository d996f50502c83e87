"""The scores written once (wavefold.metrics) against the libraries' own, and the epoch plans' source
encoding (wavefold.training.sources) decoded back to what was encoded."""

import numpy as np
import pytest
import torch
from sklearn.metrics import label_ranking_average_precision_score
from sklearn.metrics import log_loss as sklearn_log_loss

from wavefold import metrics
from wavefold.training.sources import SILENCE, Sources


def test_lwlrap_is_scikit_learns_lrap_weighted_by_labels_rows_without_one_weighing_nothing():
    rng = np.random.default_rng(3)
    scores = rng.random((200, 12)).round(1)  # ties
    truth = (rng.random((200, 12)) < 0.15).astype(int)
    truth[:20] = 0  # no label: left out by both
    keep = truth.sum(1) > 0
    expected = label_ranking_average_precision_score(truth[keep], scores[keep], sample_weight=truth[keep].sum(1))
    assert metrics.lwlrap(scores, truth) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(metrics.lwlrap(scores, np.zeros_like(truth)))


def test_cross_entropies_are_the_libraries_own_on_clipped_probabilities():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(5), 100)
    p[0] = [1, 0, 0, 0, 0]  # a zero for the true label of row 0: clipped, not infinite
    y = rng.integers(0, 5, 100)
    y[0] = 1
    clipped = np.clip(p, metrics.EPS, None)
    expected = sklearn_log_loss(y, clipped / clipped.sum(1, keepdims=True), labels=range(5))
    assert metrics.log_loss(p, y) == pytest.approx(expected, rel=1e-5)
    soft = rng.random((100, 5))
    multi = (rng.random((100, 5)) < 0.3).astype(float)
    for target in (multi, soft):
        torch_bce = torch.nn.functional.binary_cross_entropy(torch.tensor(soft), torch.tensor(target)).item()
        assert metrics.binary_cross_entropy(soft, target) == pytest.approx(torch_bce, rel=1e-9)
        assert metrics.log_loss(soft, target) == metrics.binary_cross_entropy(soft, target)


def test_every_block_of_the_source_encoding_decodes_to_what_was_encoded():
    sources = Sources(clips=10, variants=4)
    source = np.concatenate([[0, 9], sources.of_variants([0, 3]), sources.of_tests([0, 7]), [SILENCE]])
    parts = sources.parts(source)
    assert parts.clip.index.tolist() == [0, 9] and parts.variant.index.tolist() == [0, 3]
    assert parts.test.index.tolist() == [0, 7] and parts.silence.tolist() == [False] * 6 + [True]
    masks = np.stack([parts.clip.mask, parts.variant.mask, parts.test.mask, parts.silence])
    assert (masks.sum(0) == 1).all()  # every example in exactly one block
    assert not Sources(clips=10, variants=0).parts(np.array([10])).variant.any()  # no variants: a test clip
