"""Pseudo-labels: confident test predictions of one round's blend become training clips of the next.

A test clip is taken when the blend's top probability reaches its class's bar and, optionally, every
model of the round agrees with the blend's label. A class's bar is ``threshold``, lowered for a class
whose clips rarely reach it to the confidence of its ``class_share`` most confident clips (but never
under ``min_confidence``): class-balanced self-training (Zou et al., ECCV 2018). Under a shift of
voices and rooms the blend's confidence on the test audio drops, and a fixed 0.95 then takes only
silence (the hard-shift demo: not one command word in any fold), so round 2 learns nothing of the
test audio; the class share takes each command's most confident clips (there 91-98% of the words
taken were right, where the blend's argmax is right for 50% of the clips). The catch-all class
(``unknown``) keeps the fixed bar: audio the models do not recognise lands there, and under the
shift its top share is half command words.

Per-class caps keep the class mix sane: a class gets at most ``class_cap`` times as many
pseudo-labelled clips as it has labelled training clips, the most confident first — otherwise the
easy classes (silence, a loud "yes") flood the next round.
Clips the index could not decode (cached as silence placeholders) are never taken.

Pseudo-labelled clips only ever join the training side of a fold: they are test clips, so no fold
validates on them, and the next round's OOF accuracy stays a score on labelled clips only.

A multi-label competition's clips are taken by their top label the same way (its probability is the
confidence; the caps count the clips that hold a label); what a taken clip trains toward is every
label's probability (soft) or the labels of probability 0.5 or more
(:func:`wavefold.training.data.load_fold`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PseudoSettings:
    threshold: float = 0.95
    agreement: bool = True
    class_cap: float = 1.0
    class_share: float = 0.2
    min_confidence: float = 0.5


def class_bars(predicted: np.ndarray, confidence: np.ndarray, settings: PseudoSettings, labels,
               catch_all: str | None = None) -> np.ndarray:
    """Each label's confidence bar: ``threshold``, or the confidence of the label's ``class_share``
    most confident predicted clips where that is lower, but at least ``min_confidence`` (and never
    above ``threshold``)."""
    bars = np.full(len(labels), settings.threshold)
    for k, label in enumerate(labels):
        scores = np.sort(confidence[predicted == k])[::-1]
        if label == catch_all or settings.class_share <= 0 or not len(scores):
            continue
        top = scores[int(np.ceil(settings.class_share * len(scores))) - 1]
        bars[k] = min(settings.threshold, max(settings.min_confidence, top))
    return bars


def select(blend: pd.DataFrame, models: dict[str, pd.DataFrame], test_index: pd.DataFrame,
           labelled_counts: pd.Series, settings: PseudoSettings, labels,
           catch_all: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The pseudo-labelled clips (fname, row in the test cache, label, confidence, and the blend's
    probability of every label: the soft targets of ``pseudo_label.soft``) and a per-class summary.
    ``labels``: the competition's, the probability tables' columns; ``catch_all``: its label of
    everything else, which keeps the fixed threshold."""
    labels = list(labels)
    if not blend["fname"].equals(test_index["fname"]):
        raise ValueError("the blend's test clips are not in the order of the test index; re-run blend")
    probabilities = blend[labels].to_numpy()
    predicted = probabilities.argmax(1)
    confidence = probabilities.max(1)
    candidates = pd.DataFrame({"fname": blend["fname"], "row": np.arange(len(blend)),
                               "label": np.array(labels)[predicted], "confidence": confidence})  # fmt: skip
    candidates[labels] = probabilities
    usable = test_index["usable"].astype(bool).to_numpy()
    bars = class_bars(predicted[usable], confidence[usable], settings, labels, catch_all)
    confident = confidence >= bars[predicted]
    agree = np.ones(len(blend), bool)
    if settings.agreement:
        for name, table in models.items():
            if not table["fname"].equals(blend["fname"]):
                raise ValueError(f"model {name}'s test clips are not in the order of the blend; re-run average_folds")
            agree &= table[labels].to_numpy().argmax(1) == predicted
    keep = usable & confident & agree
    chosen, rows = [], []
    for label in labels:
        pool = candidates[keep & (candidates["label"] == label)].sort_values(["confidence", "fname"], ascending=[False, True])
        cap = int(np.floor(settings.class_cap * labelled_counts.get(label, 0)))
        chosen.append(pool.head(cap))
        rows.append({"label": label, "bar": round(float(bars[labels.index(label)]), 4),
                     "predicted": int((predicted == labels.index(label)).sum()),
                     "confident": int((confident & usable & (predicted == labels.index(label))).sum()),
                     "agreed": len(pool), "cap": cap, "taken": min(cap, len(pool))})  # fmt: skip
    summary = pd.DataFrame(rows)
    summary.loc[len(summary)] = {"label": "all", "bar": np.nan,
                                 **{k: int(summary[k].sum()) for k in summary.columns[2:]}}  # fmt: skip
    taken = pd.concat(chosen).sort_values("row").reset_index(drop=True)
    lowered = [f"{label} {bar:.2f}" for label, bar in zip(labels, bars) if bar < settings.threshold]
    log.info("pseudo-labels: %d of %d test clips (threshold %.3f, lowered to the top %.0f%% of a class's clips "
             "for %s; agreement %s); skipped %d undecodable clips", len(taken), len(blend), settings.threshold,
             100 * settings.class_share, ", ".join(lowered) or "none", settings.agreement,
             int((~usable).sum()))  # fmt: skip
    return taken, summary
