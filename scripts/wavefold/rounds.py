"""Which round's blend becomes the submission.

Each pseudo-label round ends in a blend with an honest CV: round r+1's fold-k models train on test
clips labelled without fold k (:func:`wavefold.blend.fold_wise_table`), so the rounds' out-of-fold tables can be
compared row by row, on the same labelled clips and the same silence examples.

``blend.final_round: auto`` keeps the last round unless an earlier round's blend is better by more
than the fold-to-fold noise (``blend.choice_noise_se`` standard errors of the paired per-fold gap),
in the metric the last round's blend was chosen by. The bias is toward the last round on purpose:
what pseudo-labels buy under a shift (the test audio's own voices and rooms) is what the CV, scored
on training audio, cannot see; what it can see is a round that made things clearly worse (the
Freesound demo's round 2: MAP@3 0.951 against round 1's 0.972, hidden 0.964 against 0.969).
``last`` always submits the last round, as wavefold did before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .competitions import encode_labels
from .errors import ExplainedError

ROUND_CHOICES = ("auto", "last")
# The functions that score rounds import wavefold.blend where they run: the workflow imports this
# module when it is parsed (blend_members), and the blend package's scikit-learn and SciPy would cost
# every snakemake call ~1.2 s.


class RoundChoiceError(ExplainedError, ValueError):
    pass


@dataclass
class RoundChoice:
    round: int
    reason: str
    metric: str  # what the rounds were compared by
    table: pd.DataFrame  # per round: its chosen candidate, CV, per-fold scores, gap to the last, noise, chosen


def blend_members(models, round_: int, across_rounds: bool) -> dict[str, tuple[int, str]]:
    """The models round ``round_``'s blend takes: name -> (round, model). The round's own models under
    their names; with ``blend.across_rounds``, every earlier round's too, as ``<model>_round<q>``.
    Their OOF rows are as leak-free as the round's own: no fold-k model of any round saw fold k's
    labels, nor pseudo-labels made from them."""
    members = {model: (int(round_), model) for model in models}
    if across_rounds:
        for earlier in range(1, int(round_)):
            members.update({f"{model}_round{earlier}": (earlier, model) for model in models})
    return members


def round_scores(oof: pd.DataFrame, truth: pd.DataFrame, labels, metric: Callable,
                 multi_label: bool = False) -> tuple[float, pd.Series]:  # fmt: skip
    """A round's blend OOF table (id, fold, labels) scored by ``metric`` on ``truth``'s rows
    (:func:`wavefold.blend.truth_table`): over all rows (as candidates.csv scores it), and per fold."""
    from . import blend

    labels = list(labels)
    probabilities = blend.align(oof, truth.index, "id", "the round's oof.csv", labels, not multi_label)
    y = encode_labels(truth["label"], labels, multi_label)
    folds = truth["fold"].to_numpy()
    per_fold = pd.Series(blend.fold_accuracies(probabilities, y, folds, metric), index=np.unique(folds))
    return float(metric(probabilities, y)), per_fold


def choose_round(scores: dict[int, tuple[float, pd.Series]], chosen: dict[int, str], how: str, noise_se: float,
                 metric: str) -> RoundChoice:  # fmt: skip
    """The round to submit from each round's :func:`round_scores` (by ``metric``) of the blend it chose
    (``chosen``: round -> candidate name). ``how``: ``auto`` or ``last``. The gap to the last round
    is over all rows; its noise, ``noise_se`` standard errors of the per-fold gaps (paired: the
    rounds are scored on the same rows)."""
    if how not in ROUND_CHOICES:
        raise RoundChoiceError(f"blend.final_round {how!r}: one of {', '.join(ROUND_CHOICES)}")
    rounds = sorted(scores)
    last = rounds[-1]
    rows = []
    last_cv, last_folds = scores[last]
    for r in rounds:
        cv, per_fold = scores[r]
        if not per_fold.index.equals(last_folds.index):
            raise RoundChoiceError(f"round {r}'s blend was scored on folds {list(per_fold.index)}, round {last}'s "
                                   f"on {list(last_folds.index)}: re-run the workflow so that both use one folds table")  # fmt: skip
        gaps = per_fold.to_numpy() - last_folds.to_numpy()
        from .blend import paired_noise

        noise = paired_noise(gaps, noise_se)
        rows.append({"round": r, "candidate": chosen[r], "metric": metric, "cv": cv,
                     **{f"fold{k}": v for k, v in per_fold.items()}, "gap_to_last": cv - last_cv, "noise": noise})  # fmt: skip
    table = pd.DataFrame(rows)
    better = table[(table["round"] != last) & (table["gap_to_last"] > table["noise"])]
    if how == "last":
        pick, reason = last, f"round {last}, the last (blend.final_round: last)"
    elif len(better):
        best = better.sort_values(["cv", "round"], ascending=[False, False]).iloc[0]
        pick = int(best["round"])
        reason = (f"round {pick} ({best['candidate']}): its CV {metric} {best['cv']:.4f} beats the last round's "
                  f"({table['cv'].iloc[-1]:.4f}) by {best['gap_to_last']:+.4f}, more than the fold-to-fold noise "
                  f"({noise_se:g} SE = {best['noise']:.4f}): the last round's pseudo-labels made it worse")  # fmt: skip
    elif len(rounds) == 1:
        pick, reason = last, f"round {last}, the only one"
    else:
        pick = last
        reason = (f"round {last}, the last: no earlier round's blend beats its CV {metric} "
                  f"({table['cv'].iloc[-1]:.4f}) by more than the fold-to-fold noise ({noise_se:g} SE)")  # fmt: skip
    table["chosen"] = table["round"] == pick
    return RoundChoice(pick, reason, metric, table)


def choose_final(oof_tables: dict[int, pd.DataFrame], chosen: dict[int, str], last_shifted: bool,
                 truth: pd.DataFrame, competition, how: str, noise_se: float, choose_by: str) -> RoundChoice:  # fmt: skip
    """The round to submit, from every round's blend OOF table (id, fold, labels) and chosen candidate,
    compared by what the last round's blend ranked by (``blend.choose_by``; under ``auto``, balanced
    accuracy when the last round's shift check found a shift)."""
    from . import blend

    functions = blend.metric_functions(blend.competition_metric(competition))
    metric = blend.ranking_metric(choose_by, last_shifted, competition.metric_name, competition.multi_label)
    scores = {r: round_scores(oof, truth, competition.labels, functions[metric], competition.multi_label)
              for r, oof in oof_tables.items()}  # fmt: skip
    return choose_round(scores, chosen, how, noise_se, metric)
