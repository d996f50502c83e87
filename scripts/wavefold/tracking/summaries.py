"""A job's, a blend's and a workflow's numbers as MLflow metrics, named by the competition's metric
(``fold_map3``, ``cv_lwlrap``, ``hidden_accuracy``, ...)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..blend import chosen_candidate


def fold_score(competition, oof: pd.DataFrame, truth: pd.DataFrame) -> float:
    """The competition's metric on a training job's out-of-fold probabilities (``oof``: an ``id``
    column and one per label) over the rows the CV scores (``truth``: indexed by id, with ``label``)."""
    scored = oof.set_index("id").reindex(truth.index.intersection(oof["id"]))
    if not len(scored):
        return float("nan")
    y = competition.truth(truth.loc[scored.index, "label"])
    return float(np.mean(competition.metric_rows(scored[list(competition.labels)].to_numpy(), y)))


def job_summary(competition, metrics: pd.DataFrame, curve: pd.DataFrame, score: float) -> dict[str, float]:
    """A training job's final numbers: the competition's metric on its fold, each label's recall
    (a multi-label model's at probability 0.5) and the epochs it ran."""
    summary = {f"fold_{competition.metric_name}": score, "epochs_run": float(len(curve))}
    for label, recall in metrics.set_index("label")["recall"].drop("all").items():
        if not math.isnan(recall):
            summary[f"recall.{label}"] = float(recall)
    return summary


def curve_steps(curve: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """Every numeric column of a learning curve as (epoch, value) steps; empty cells are skipped."""
    steps = {}
    for column in curve.columns.drop("epoch"):
        values = pd.to_numeric(curve[column], errors="coerce")
        points = [(int(e), float(v)) for e, v in zip(curve["epoch"], values) if not math.isnan(v)]
        if points:
            steps[column] = points
    return steps


def blend_summary(candidates: pd.DataFrame, metric: str) -> tuple[dict[str, float], str]:
    """A round's blend candidates as metrics (each one's CV by the competition's metric and log-loss),
    and the chosen one."""
    values = {}
    for row in candidates.to_dict("records"):
        values[f"cv_{metric}.{row['candidate']}"] = float(row[metric])
        values[f"cv_log_loss.{row['candidate']}"] = float(row["log_loss"])
    return values, chosen_candidate(candidates, metric)[0]


def shift_summary(shift: pd.DataFrame) -> dict[str, float]:
    """The blend's shift check (shift.csv) as metrics."""
    check = shift.iloc[0]
    return {f"shift.{k}": float(check[k]) for k in ("disagreement_oof", "disagreement_test", "ratio")
            if k in check and not math.isnan(check[k])}  # fmt: skip


def hidden_scores(local_scores: pd.DataFrame, metric: str, final_round: int) -> dict[str, float]:
    """The demo's hidden-solution score of every model, blend and final prediction by round, and the
    submission's as ``hidden_<metric>``."""
    scores = {}
    for row in local_scores.itertuples():
        # "final: stacking" -> final (the chosen name varies between runs), "blend (mean)" -> blend_mean
        name = "final" if row.predictions.startswith("final") else row.predictions
        name = name.replace("blend (", "blend_").rstrip(")")
        scores[f"hidden.round{row.round}.{name}"] = float(row.hidden)
    finals = local_scores[(local_scores["round"] == final_round) & local_scores["predictions"].str.startswith("final")]
    if len(finals):
        scores[f"hidden_{metric}"] = float(finals["hidden"].iloc[0])
    return scores
