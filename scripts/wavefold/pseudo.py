"""Pseudo-labels: confident test predictions of one round's blend become training clips of the next.

A test clip is taken when the blend's top probability reaches the threshold and, optionally, every
model of the round agrees with the blend's label. Per-class caps keep the class mix sane: a class
gets at most ``class_cap`` times as many pseudo-labelled clips as it has labelled training clips,
the most confident first — otherwise the easy classes (silence, a loud "yes") flood the next round.
Clips the index could not decode (cached as silence placeholders) are never taken.

Pseudo-labelled clips only ever join the training side of a fold: they are test clips, so no fold
validates on them, and the next round's OOF accuracy stays a score on labelled clips only.

A multi-label competition's clips are taken by their top label the same way (its probability is the
confidence; the caps count the clips that hold a label); what a taken clip trains toward is every
label's probability (soft) or the labels of probability 0.5 or more (:func:`wavefold.training.data.load_fold`).
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


def select(blend: pd.DataFrame, models: dict[str, pd.DataFrame], test_index: pd.DataFrame,
           labelled_counts: pd.Series, settings: PseudoSettings, labels) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The pseudo-labelled clips (fname, row in the test cache, label, confidence, and the blend's
    probability of every label: the soft targets of ``pseudo_label.soft``) and a per-class summary.
    ``labels``: the competition's, the probability tables' columns."""
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
    confident = confidence >= settings.threshold
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
        rows.append({"label": label, "predicted": int((predicted == labels.index(label)).sum()),
                     "confident": int((confident & usable & (predicted == labels.index(label))).sum()),
                     "agreed": len(pool), "cap": cap, "taken": min(cap, len(pool))})  # fmt: skip
    summary = pd.DataFrame(rows)
    summary.loc[len(summary)] = {"label": "all", **{k: int(summary[k].sum()) for k in summary.columns[1:]}}
    taken = pd.concat(chosen).sort_values("row").reset_index(drop=True)
    log.info("pseudo-labels: %d of %d test clips (threshold %.3f, agreement %s); skipped %d undecodable clips",
             len(taken), len(blend), settings.threshold, settings.agreement, int((~usable).sum()))  # fmt: skip
    return taken, summary
