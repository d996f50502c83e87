"""The shift check: does the test audio look like the OOF rows to the models? Measured without labels."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


#: The shift check judges only models that agree on at least half the OOF rows (ShiftCheck.conclusive).
MAX_OOF_DISAGREEMENT = 0.5


@dataclass(frozen=True)
class ShiftCheck:
    """Does the test audio look like the OOF rows to the models? Measured without labels.

    Models that agree on held-out audio like their training's and disagree far more often on the test
    audio are meeting something the folds never showed them: their disagreement tracks their error
    (Jiang et al., 2022, "Assessing generalization of SGD via disagreement"), so the CV overstates the
    test score, and a choice that rests on the OOF rows' own label mix (a stacker's intercepts) does not
    carry over. Measured on the demos: 0.8-1.0x on the default (mild) demo, 1.4-2.0x under the hard
    shift (docs/figures.md)."""

    disagreement_oof: float  # share of OOF rows on which two models' labels differ (mean over pairs)
    disagreement_test: float  # the same on the test clips
    confidence_oof: float  # the mean of the models' top probability on the OOF rows
    confidence_test: float  # ... on the test clips
    threshold: float  # blend.shift_ratio

    @property
    def ratio(self) -> float:
        return self.disagreement_test / self.disagreement_oof if self.disagreement_oof > 0 else float("nan")

    @property
    def conclusive(self) -> bool:
        """Disagreement stands for error only between models that are mostly right: models that already
        disagree on most OOF rows (a first epoch, near chance) tell nothing by disagreeing on the test."""
        return bool(0 < self.disagreement_oof <= MAX_OOF_DISAGREEMENT)

    @property
    def shifted(self) -> bool:
        return self.conclusive and bool(self.ratio >= self.threshold)

    def describe(self) -> str:
        if np.isnan(self.ratio):
            return "no shift check: it needs two models that disagree on some OOF rows"
        if not self.conclusive:
            return (f"shift check inconclusive: the models disagree on {self.disagreement_oof:.1%} of the OOF rows "
                    f"already (more than {MAX_OOF_DISAGREEMENT:.0%}): too unsure for their disagreement on the "
                    f"test clips ({self.disagreement_test:.1%}, {self.ratio:.2f}x) to tell a shift")  # fmt: skip
        verdict = "the test set looks SHIFTED from training" if self.shifted else "no shift seen"
        return (f"{verdict}: the models disagree on {self.disagreement_test:.1%} of the test clips against "
                f"{self.disagreement_oof:.1%} of the OOF rows ({self.ratio:.2f}x; shifted from "
                f"blend.shift_ratio = {self.threshold:g}x); mean top probability {self.confidence_test:.3f} on "
                f"the test against {self.confidence_oof:.3f} on the OOF rows")  # fmt: skip

    def table(self) -> pd.DataFrame:
        row = {**asdict(self), "ratio": self.ratio, "conclusive": self.conclusive, "shifted": self.shifted}
        return pd.DataFrame([row])


def _disagreement(P: np.ndarray) -> float:
    labels = P.argmax(-1)
    pairs = [(i, j) for i in range(len(P)) for j in range(i + 1, len(P))]
    return float(np.mean([(labels[i] != labels[j]).mean() for i, j in pairs])) if pairs else float("nan")


def shift_check(P_oof: np.ndarray, P_test: np.ndarray, threshold: float) -> ShiftCheck:
    """:class:`ShiftCheck` of the models' OOF (models, rows, classes) and test (models, clips, classes) tables."""
    return ShiftCheck(_disagreement(P_oof), _disagreement(P_test), float(P_oof.max(-1).mean()),
                      float(P_test.max(-1).mean()), threshold)  # fmt: skip
