"""Blending the out-of-fold probabilities of several models, and applying the blend to the test set.

Every combiner is fitted on out-of-fold (OOF) probabilities only, and every combiner that learns
something (weights, temperatures, a stacker) is scored by cross-validation over the same folds the
models were trained on: fitted on the other folds' OOF rows, scored on the held-out fold. So the CV
of a blend is as honest as the CV of a single model, and choosing the best candidate by that CV
(the single models are candidates too) never picks a blend that only looks better because it saw
its own validation rows.

Candidates:
  - every single model;
  - ``mean``: the plain average;
  - ``logloss``: non-negative weights summing to 1 that minimise the log-loss (scipy, SLSQP);
  - ``accuracy``: Caruana et al. (2004) greedy ensemble selection with replacement, which climbs
    accuracy directly (log-loss breaks ties) — the usual Kaggle answer to a non-smooth metric;
  - ``stacking``: a multinomial logistic regression (scikit-learn) on the models' log-probabilities.
Optionally each model is temperature-scaled first (one temperature per model, fitted on OOF).

``auto`` chooses by CV, but not blindly: a candidate that fits more to the OOF rows (weights, then a
stacker) is chosen over a simpler one only if its CV gain exceeds the fold-to-fold noise — the
standard error of the paired per-fold accuracy differences, times ``choice_noise_se`` (the
one-standard-error rule). A stacker that wins CV by 0.4 points on 3 folds has learned the OOF label
mix as much as anything; under a shifted test set the plain mean holds up better.
It ranks by accuracy on the OOF rows, or by balanced accuracy (``choose_by``); by default (``auto``)
by balanced accuracy only where a label-free shift check (:func:`shift_check`: do the models disagree
far more often on the test clips than on the OOF rows?) finds the test set shifted, because a lead
won from the OOF rows' label mix is worth something on a test set like them and costs under a shift.
Optionally the test probabilities are corrected toward the test set's class prior, re-estimated
by EM (Saerens, Latinne & Decaestecker, 2002): the real test set is ~53% unknown, train far less.
EM is bounded: no class's estimate moves further than ``em_max_ratio`` times (or 1/that) from where it
starts, because under a shift of voices and noise unfamiliar audio looks "unknown" and unbounded EM
follows it (a class driven to 0% or 90%); a bound that binds is logged.
EM must start from the prior the probabilities carry. By default (``em_start: calibrated``) the
chosen blend is first calibrated on its OOF rows by bias-corrected temperature scaling (Alexandari,
Kundaje & Shrikumar, 2020), after which it carries the OOF label mix, where EM starts; measured on
the default demo, this estimates the test's unknown share to within 0.01 where starting from the
training mix overshoots by 0.06-0.19. ``em_start: trained`` starts from the label mix the models
were trained on (``balanced`` and ``unknown_share`` sampling change it; for the stacker, fitted on
OOF rows, the OOF mix), with the probabilities as they are.

Besides the blend of all fold models, a blend is made fold by fold, of the test predictions of the
fold-k models only (which never trained on fold k): chosen by a CV over the other folds, fitted and
calibrated on their rows, EM started from their label mix (:func:`fold_wise_table`). Those tables label
the test clips that train the next round's fold-k models (:mod:`wavefold.pseudo`), so that no fold's
labels reach its own validation through the pseudo-labels.

Multi-label competitions (the true labels ``y`` a multi-hot matrix, each label's probability a yes/no
of its own): the log-loss is the binary cross-entropy of every label, accuracy the share of rows whose
top label is true, and the candidates are the single models, the mean and the two weighted blends.
What assumes one label per clip is left out, and the log says so: the multinomial stacker, softmax
temperatures, EM's class prior and matching the label mix; ``auto`` ranks by the competition's metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar

from .competitions import encode_labels, split_label_sets
from .errors import ExplainedError
from .metrics import EPS, log_loss

log = logging.getLogger(__name__)

METHODS = ("mean", "logloss", "accuracy", "stacking")


class BlendError(ExplainedError, ValueError):
    """Probability tables that cannot be blended; the message names the file and the fix."""


#: The ``blend`` settings that choose what is blended or which round is submitted, not how a blend
#: is fitted: not :class:`BlendSettings` fields, and not the blend rule's settings params.
NOT_FIT_SETTINGS = ("external", "final_round", "across_rounds")


@dataclass(frozen=True)
class BlendSettings:
    # auto (the simplest candidate within the fold-to-fold noise of the best CV) | a model | a blend method
    method: str = "auto"
    candidates: tuple = ("mean", "logloss", "accuracy", "stacking")
    # Per-model temperatures fitted on OOF before blending: in-domain calibration a shifted test set
    # does not share (off: see config/config.yaml).
    temperature: bool = False
    prior_correction: str = "none"  # none | em
    em_max_ratio: float = 3.0  # EM's estimate of a class stays within [1/r, r] x the prior it starts from
    # Where EM starts: "trained" (the mix the models were trained under, as they are) or "calibrated"
    # (the blend first calibrated on OOF by bias-corrected temperature scaling; then the OOF mix).
    em_start: str = "calibrated"
    accuracy_iterations: int = 40
    choice_noise_se: float = 1.0  # auto: a more fitted candidate must beat a simpler one by this many SEs
    # What auto ranks the candidates by: accuracy (the competition's metric, on the training mix),
    # balanced_accuracy (the mean recall per class: blind to the class mix, for a test mix unlike
    # training's), or auto: balanced_accuracy where the shift check finds the test set shifted, else accuracy.
    choose_by: str = "auto"
    # The shift check: the test set counts as shifted when the models disagree on its clips this many
    # times as often as on the OOF rows (see shift_check).
    shift_ratio: float = 1.25
    # Label the test clips so that each label's share is the share the blend's own probabilities give
    # it (their mean), instead of taking each clip's argmax: see match_label_mix (off: config.yaml says why).
    match_mix: bool = False


# ---------------------------------------------------------------- reading ---------------------------------


def read_table(path, id_column: str, labels) -> pd.DataFrame:
    """A probability table in the workflow's format, checked: id column, a column per label, valid values."""
    try:
        table = pd.read_csv(path)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same explanation
        raise BlendError(f"{path}: cannot read it as CSV ({error})") from error
    missing = [c for c in [id_column, *labels] if c not in table.columns]
    if missing:
        raise BlendError(
            f"{path}: missing columns {missing}. Probability tables have '{id_column}' and one column per label "
            f"({' '.join(labels)}): see the README, \"Probability tables\"."
        )
    values = table[list(labels)].to_numpy(dtype=float)
    if not np.isfinite(values).all() or (values < 0).any():
        raise BlendError(f"{path}: probabilities must be finite and non-negative")
    if table[id_column].duplicated().any():
        dupes = table.loc[table[id_column].duplicated(), id_column].head(3).tolist()
        raise BlendError(f"{path}: clip ids repeat, e.g. {dupes}")
    return table


def align(table: pd.DataFrame, ids: pd.Index, id_column: str, path, labels, normalise: bool = True) -> np.ndarray:
    """The table's probabilities in the order of ``ids``, renormalised to sum to 1 (not a multi-label
    table's: ``normalise`` False); every id must be there."""
    indexed = table.set_index(id_column)
    absent = ids.difference(indexed.index)
    if len(absent):
        raise BlendError(
            f"{path}: {len(absent)} of {len(ids)} clips have no prediction (e.g. {list(absent[:3])}). "
            f"Predictions that join a blend must cover every clip."
        )
    values = indexed.loc[ids, list(labels)].to_numpy(dtype=float)
    if not normalise:
        return np.clip(values, 0.0, 1.0)
    return values / np.clip(values.sum(1, keepdims=True), EPS, None)


def truth_table(folds: pd.DataFrame, silence: pd.DataFrame) -> pd.DataFrame:
    """Every OOF clip the CV is scored on, with its fold and label: the labelled clips whose labels
    are to be trusted (``scored``: Freesound's manually verified ones, as every test label is) and
    the silence examples. The blend is fitted and scored on these rows only."""
    columns = ["id", "fold", "label"]
    if "scored" in folds.columns:
        folds = folds[folds["scored"].astype(bool)]
    return pd.concat([folds[columns], silence[columns]], ignore_index=True).set_index("id")


# ---------------------------------------------------------------- metrics ---------------------------------


def accuracy(probabilities: np.ndarray, y: np.ndarray) -> float:
    """The share of rows whose top label is true (one of a multi-label row's)."""
    if y.ndim == 2:
        return float(y[np.arange(len(y)), probabilities.argmax(1)].mean())
    return float((probabilities.argmax(1) == y).mean())


def balanced_accuracy(probabilities: np.ndarray, y: np.ndarray) -> float:
    """The mean over the classes present of each one's recall: the accuracy on a test set holding every
    class equally often, whatever the mix of the rows scored. A blend cannot raise it by leaning toward
    the class the OOF rows hold most of (here: unknown, ~60% of training, ~20-50% of a test set).
    Multi-label: each label's share of the rows holding it whose top label it is, averaged."""
    predicted = probabilities.argmax(1)
    if y.ndim == 2:
        present = np.flatnonzero(y.sum(0) > 0)
        return float(np.mean([(predicted[y[:, c] > 0] == c).mean() for c in present]))
    return float(np.mean([(predicted[y == c] == c).mean() for c in np.unique(y)]))


#: What ``auto`` ranks the candidates by (``blend.choose_by``; ``auto`` picks one by the shift check).
CHOICE_METRICS = {"accuracy": accuracy, "balanced_accuracy": balanced_accuracy}
#: ``metric``: the competition's own (accuracy unless ``fit_blend`` is given another).
CHOOSE_BY = (*CHOICE_METRICS, "metric", "auto")


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


# ---------------------------------------------------------------- combiners -------------------------------
# P has shape (models, clips, classes). A combiner is fit(P, y) -> state and apply(P, state) -> probabilities.


def _normalise(p: np.ndarray) -> np.ndarray:
    return p / np.clip(p.sum(-1, keepdims=True), EPS, None)


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature T that minimises the log-loss of softmax(log p / T)."""
    logp = np.log(np.clip(p, EPS, None))

    def loss(log_t):
        return log_loss(scale_temperature(logp, np.exp(log_t), logs=True), y)

    return float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))


def scale_temperature(p: np.ndarray, temperature: float, logs: bool = False) -> np.ndarray:
    logits = (p if logs else np.log(np.clip(p, EPS, None))) / temperature
    logits = logits - logits.max(-1, keepdims=True)
    return _normalise(np.exp(logits))


def fit_logloss_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    m = len(P)
    if y.ndim == 2:  # multi-label: every label's binary cross-entropy
        flat_y, flat_p = y.ravel(), P.reshape(m, -1)
        picked = np.where(flat_y > 0, flat_p, 1 - flat_p)  # each model's probability of what is true
    else:
        picked = P[:, np.arange(len(y)), y]  # (models, clips): only the true class matters for log-loss

    def loss(w):
        return -np.log(np.clip(w @ picked, EPS, None)).mean()

    def grad(w):
        return -(picked / np.clip(w @ picked, EPS, None)).mean(1)

    result = minimize(loss, np.full(m, 1 / m), jac=grad, method="SLSQP", bounds=[(0, 1)] * m,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}])  # fmt: skip
    weights = np.clip(result.x, 0, None)
    return weights / weights.sum()


def fit_accuracy_weights(P: np.ndarray, y: np.ndarray, iterations: int = 40) -> np.ndarray:
    """Greedy forward selection with replacement (Caruana et al., 2004): add the model that most
    improves accuracy (ties: log-loss) of the running average; weights are the selection counts."""
    m = len(P)
    counts = np.zeros(m)
    total = np.zeros_like(P[0])
    for _ in range(iterations):
        best = None
        for i in range(m):
            candidate = (total + P[i]) / (counts.sum() + 1)
            score = (accuracy(candidate, y), -log_loss(candidate, y))
            if best is None or score > best[0]:
                best = (score, i)
        counts[best[1]] += 1
        total += P[best[1]]
    return counts / counts.sum()


def _stack_features(P: np.ndarray) -> np.ndarray:
    return np.log(np.clip(P, EPS, None)).transpose(1, 0, 2).reshape(P.shape[1], -1)


def fit_stacker(P: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    # Classes absent from a training split still get a column: the stacker predicts all 12.
    # newton-cg: ~10x faster than lbfgs on these few, strongly correlated features.
    model = LogisticRegression(C=1.0, max_iter=500, solver="newton-cg")
    model.fit(_stack_features(P), y)
    return model


def apply_stacker(model, P: np.ndarray) -> np.ndarray:
    out = np.full(P.shape[1:], EPS)
    out[:, model.classes_] = model.predict_proba(_stack_features(P))
    return _normalise(out)


def fit_method(method: str, P: np.ndarray, y: np.ndarray, settings: BlendSettings):
    if method == "mean":
        return np.full(len(P), 1 / len(P))
    if method == "logloss":
        return fit_logloss_weights(P, y)
    if method == "accuracy":
        return fit_accuracy_weights(P, y, settings.accuracy_iterations)
    if method == "stacking":
        return fit_stacker(P, y)
    raise BlendError(f"unknown blend method {method!r} (one of {', '.join(METHODS)})")


def apply_method(method: str, state, P: np.ndarray, normalise: bool = True) -> np.ndarray:
    """A fitted combiner on P; ``normalise`` False for multi-label tables (weights sum to 1 already)."""
    if method == "stacking":
        return apply_stacker(state, P)
    blended = np.tensordot(state, P, axes=1)
    return _normalise(blended) if normalise else blended


# ---------------------------------------------------------------- the blend -------------------------------


#: How much each kind of candidate fits to the OOF rows it is chosen on; ``auto`` prefers the lowest
#: whose CV is within the fold-to-fold noise of the best. The mean fits nothing; picking one model
#: is a choice among several; weights fit one number per model; the stacker a matrix per model.
COMPLEXITY = {"mean": 0, "model": 1, "logloss": 2, "accuracy": 2, "stacking": 3}


def fold_accuracies(probabilities: np.ndarray, y: np.ndarray, folds: np.ndarray, metric=accuracy) -> np.ndarray:
    return np.array([metric(probabilities[folds == f], y[folds == f]) for f in np.unique(folds)])


def fold_std(accuracies: np.ndarray) -> float:
    """The spread of a candidate's accuracy over the folds (0 with a single fold)."""
    return float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0


def paired_noise(gaps: np.ndarray, noise_se: float) -> float:
    """``noise_se`` standard errors of the mean of per-fold gaps between two predictions (0 with one fold)."""
    return float(noise_se * gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else 0.0


def metric_functions(metric: tuple[str, Callable] | None) -> dict[str, Callable]:
    """What candidates are scored and ranked by: accuracy, balanced accuracy and the competition's own."""
    return {**CHOICE_METRICS, **dict([metric] if metric else [])}


def choose_auto(candidates: pd.DataFrame, per_fold: dict[str, np.ndarray], noise_se: float,
                metric: str = "accuracy") -> tuple[str, str]:  # fmt: skip
    """The simplest candidate whose CV ``metric`` (a column of ``candidates``, per fold in ``per_fold``) is
    within ``noise_se`` standard errors of the best one's (paired over folds), ties broken by it; and why,
    in words. ``candidates`` has candidate, kind, log_loss and the metric's column."""
    ranked = candidates.sort_values([metric, "log_loss"], ascending=[False, True], kind="stable")
    best = ranked["candidate"].iloc[0]
    eligible = []
    for row in ranked.itertuples():
        gap = per_fold[best] - per_fold[row.candidate]
        noise = paired_noise(gap, noise_se)
        if gap.mean() <= noise:
            complexity = COMPLEXITY["model"] if row.kind == "model" else COMPLEXITY[row.candidate]
            eligible.append((complexity, -getattr(row, metric), row.log_loss, row.candidate, gap.mean(), noise))
    _, _, _, chosen, gap, noise = min(eligible)
    by = "" if metric == "accuracy" else f" by {metric}"
    if chosen == best:
        return chosen, f"{chosen}: the best CV{by}, and no simpler candidate is within the fold-to-fold noise of it"
    return chosen, (
        f"{chosen}: within the fold-to-fold noise of the best CV{by} ({best}, {gap:+.4f} ahead, noise "
        f"{noise_se:g} SE = {noise:.4f}) and simpler, so less fitted to the OOF rows"
    )


def ranking_metric(choose_by: str, shifted: bool, own_metric: str, multi_label: bool = False) -> str:
    """What a blend ranks its candidates by: ``blend.choose_by``, where ``metric`` is the competition's
    own (``own_metric``) and ``auto`` is balanced accuracy if the shift check finds the test set shifted
    (a multi-label competition's own metric: its ranking metric weighs every label already)."""
    shifted = shifted and not multi_label
    return {"metric": own_metric, "auto": "balanced_accuracy" if shifted else own_metric}.get(choose_by, choose_by)


#: What a multi-label blend leaves out (it assumes one label per clip), and why, for the log.
SINGLE_LABEL_ONLY = {
    "stacking": "the multinomial stacker predicts one label per clip",
    "temperature": "temperature scaling calibrates one softmax",
    "prior_correction": "EM re-estimates the prior of classes that exclude each other",
    "match_mix": "matching the label mix counts one label per clip",
}


def multi_label_settings(settings: BlendSettings) -> BlendSettings:
    """``settings`` without what assumes one label per clip (:data:`SINGLE_LABEL_ONLY`), each drop logged."""
    dropped = []
    if "stacking" in settings.candidates:
        dropped.append("stacking")
    for name, off in (("temperature", False), ("prior_correction", "none"), ("match_mix", False)):
        if getattr(settings, name) != off:
            dropped.append(name)
    for name in dropped:
        log.warning("blend: %s left out for this multi-label competition: %s", name, SINGLE_LABEL_ONLY[name])
    return replace(settings, candidates=tuple(c for c in settings.candidates if c != "stacking"), temperature=False,
                   prior_correction="none", match_mix=False)  # fmt: skip


def competition_metric(competition) -> tuple[str, Callable] | None:
    """A competition's metric as the blend scores it, where it is not accuracy (already a column)."""
    if competition.metric_name == "accuracy":
        return None
    return competition.metric_name, lambda p, y: float(np.mean(competition.metric_rows(p, y)))


def chosen_candidate(candidates: pd.DataFrame, metric: str = "accuracy") -> tuple[str, float]:
    """The chosen blend's name and CV by ``metric`` (the competition's), from a ``candidates.csv`` table."""
    row = candidates[candidates["chosen"]].iloc[0]
    return str(row["candidate"]), float(row[metric])


@dataclass
class Blend:
    """The chosen blend, its candidates' CV, and what it learned (for the report)."""

    chosen: str
    candidates: pd.DataFrame  # candidate, kind, accuracy, log_loss, chosen
    weights: pd.DataFrame  # model, temperature, and one weight column per weighted method
    oof: np.ndarray
    test: np.ndarray
    reason: str = ""  # why ``chosen`` was chosen
    shift: ShiftCheck | None = None  # the shift check of the models' OOF and test tables
    chosen_by: str = "accuracy"  # the metric auto ranked by (blend.choose_by, or the shift check's pick)
    labels: tuple[str, ...] = ()  # the submission's labels: the columns of every probability array
    test_prior: np.ndarray | None = None  # EM's estimate of the test set's label mix
    em_unbounded: np.ndarray | None = None  # EM's estimate without the bound, for the log and the report
    reference_prior: np.ndarray | None = None  # the mix the blended probabilities were made under
    fold_tests: dict = field(default_factory=dict)  # fold -> test probabilities of the blend fitted without it
    fold_choices: dict = field(default_factory=dict)  # fold -> which candidate that blend is, and why
    candidate_tests: dict = field(default_factory=dict)  # every candidate's test probabilities (before EM)
    argmax_test: np.ndarray | None = None  # with match_mix: the test probabilities before the matching
    mix_weights: np.ndarray | None = None  # with match_mix: the class weights that match the label mix
    matched_oof_accuracy: float | None = None  # with match_mix: the chosen blend's CV with its OOF matched too


def _temperatures(P: np.ndarray, y: np.ndarray, on: bool) -> np.ndarray | None:
    """Each model's temperature; None for multi-label tables, whose probabilities stay as they are
    (scaling renormalises a row to sum to 1, which a row of yes/no probabilities does not)."""
    if y.ndim == 2:
        return None
    return np.array([fit_temperature(p, y) for p in P]) if on else np.ones(len(P))


def _scaled(P: np.ndarray, temperatures: np.ndarray | None) -> np.ndarray:
    if temperatures is None:
        return P
    return np.stack([scale_temperature(p, t) for p, t in zip(P, temperatures)])


def fit_with_temperatures(method: str, P: np.ndarray, y: np.ndarray, settings: BlendSettings):
    """(temperatures, combiner state), both fitted on these rows only."""
    temperatures = _temperatures(P, y, settings.temperature)
    return temperatures, fit_method(method, _scaled(P, temperatures), y, settings)


def apply_with_temperatures(method: str, fitted, P: np.ndarray, normalise: bool = True) -> np.ndarray:
    temperatures, state = fitted
    return apply_method(method, state, _scaled(P, temperatures), normalise)


def cross_validated(method: str, P: np.ndarray, y: np.ndarray, folds: np.ndarray,
                    settings: BlendSettings) -> tuple[np.ndarray, dict]:  # fmt: skip
    """OOF probabilities of a combiner fitted fold by fold on the other folds' rows, and those fits
    by held-out fold (they also make the fold-wise test tables of the pseudo-labels)."""
    out, fitted = np.zeros(P.shape[1:]), {}
    for fold in np.unique(folds):
        held = folds == fold
        fitted[int(fold)] = fit_with_temperatures(method, P[:, ~held], y[~held], settings)
        out[held] = apply_with_temperatures(method, fitted[int(fold)], P[:, held], normalise=y.ndim == 1)
    return out, fitted


def bound_prior(prior: np.ndarray, reference: np.ndarray, max_ratio: float) -> np.ndarray:
    """``prior`` with every class held within [1/max_ratio, max_ratio] x ``reference``, summing to 1:
    clip(scale x prior) to those bounds, with the one scale that makes it sum to 1 (found by bisection;
    the sum grows with the scale)."""
    low, high = reference / max_ratio, np.minimum(reference * max_ratio, 1.0)
    if low.sum() >= 1.0:  # max_ratio 1: nothing may move
        return reference / reference.sum()
    prior = np.clip(prior, EPS, None)
    lo, hi = np.log(EPS), np.log(1 / EPS)
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(np.exp(mid) * prior, low, high).sum() < 1.0 else (lo, mid)
    bounded = np.clip(np.exp((lo + hi) / 2) * prior, low, high)
    return bounded / bounded.sum()


def fit_bias_corrected_temperature(p: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Bias-corrected temperature scaling (Alexandari et al., 2020): softmax(log p / T + b), T and the
    per-class biases b minimising the log-loss on these (OOF) rows. Calibrated so, the probabilities
    carry the OOF rows' label mix, which is where EM then starts."""
    logp = np.log(np.clip(p, EPS, None))
    onehot = np.eye(p.shape[1])[y]

    def loss_and_grad(theta):
        inv_t, bias = np.exp(theta[0]), theta[1:]
        q = scale_temperature(logp * inv_t + bias, 1.0, logs=True)
        loss = -np.log(np.clip(q[np.arange(len(y)), y], EPS, None)).mean()
        residual = (q - onehot) / len(y)
        return loss, np.concatenate([[np.sum(residual * logp) * inv_t], residual.sum(0)])

    theta = minimize(loss_and_grad, np.zeros(1 + p.shape[1]), jac=True, method="L-BFGS-B").x
    return float(np.exp(-theta[0])), theta[1:]


def apply_bias_corrected_temperature(p: np.ndarray, temperature: float, bias: np.ndarray) -> np.ndarray:
    return scale_temperature(np.log(np.clip(p, EPS, None)) / temperature + bias, 1.0, logs=True)


def em_prior(probabilities: np.ndarray, train_prior: np.ndarray, iterations: int = 100, tol: float = 1e-6,
             max_ratio: float | None = None):  # fmt: skip
    """Saerens et al. (2002): re-estimate the class prior of unlabelled data and adjust its posteriors.

    ``max_ratio``: each class's estimate is held within [1/max_ratio, max_ratio] x ``train_prior`` at
    every step (bounded EM; None: unbounded)."""
    train_prior = np.clip(train_prior, EPS, None)
    train_prior = train_prior / train_prior.sum()
    prior = train_prior.copy()
    for _ in range(iterations):
        new_prior = _normalise(probabilities * (prior / train_prior)).mean(0)
        if max_ratio is not None:
            new_prior = bound_prior(new_prior, train_prior, max_ratio)
        converged = np.abs(new_prior - prior).max() < tol
        prior = new_prior
        if converged:
            break
    return _normalise(probabilities * (prior / train_prior)), prior


def match_label_mix(probabilities: np.ndarray, target: np.ndarray | None = None,
                    iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Re-weight the classes so that the argmax labels come in the mix ``target`` (default: the mean
    probability of each class, the "probabilistic classify and count" estimate of the mix).

    Why: under a shift of voices and recording, posteriors go flat, and the class that covers
    everything unfamiliar ("unknown") wins the argmax of clips whose probability for it is small:
    the argmax counts then send far more clips to it than the probabilities themselves expect (the
    hard-shift demo: mean p(unknown) 0.29 against 76% argmax-unknown, truth 23%). Matching the counts
    to the probabilities' own mix removes that distortion and changes nothing where the two agree.
    It uses the test probabilities only (no labels). Returns (re-weighted probabilities, weights).

    The weights are found by multiplicative updates toward the target with a decaying step; the best
    iterate (smallest total variation between the label shares and the target) is kept."""
    n, classes = probabilities.shape
    target = probabilities.mean(0) if target is None else np.asarray(target, float)
    log_p = np.log(np.clip(probabilities, EPS, None))
    bias, best, best_gap = np.zeros(classes), np.zeros(classes), np.inf
    for step in range(iterations):
        shares = np.bincount((log_p + bias).argmax(1), minlength=classes) / n
        gap = 0.5 * np.abs(shares - target).sum()
        if gap < best_gap:
            best, best_gap = bias.copy(), gap
        if gap <= 0.5 / n:
            break
        bias += 0.5 * 0.98**step * (np.log(target + 1e-6) - np.log(shares + 1e-6))
    weights = np.exp(best - best.max())
    return _normalise(probabilities * weights), weights


def reference_prior(chosen: str, names: list[str], weights: pd.DataFrame, trained: dict[str, np.ndarray],
                    y: np.ndarray, n_labels: int) -> np.ndarray:  # fmt: skip
    """The class prior the chosen blend's probabilities are made under: where EM starts from.

    A model's probabilities assume the label mix it was trained on (``trained``, from its metrics);
    a weighted blend, the weighted mix; the stacker, fitted on OOF rows, the OOF label mix (as does a
    teammate's model, whose training mix is unknown)."""
    oof_mix = np.bincount(y, minlength=n_labels) / len(y)
    prior_of = {name: trained.get(name, oof_mix) for name in names}
    if chosen in names:
        return prior_of[chosen]
    if chosen == "stacking":
        return oof_mix
    w = weights.set_index("model")[chosen].reindex(names).to_numpy()
    return sum(wi * prior_of[name] for wi, name in zip(w, names))


def score_candidates(cv_oof: dict[str, np.ndarray], names: list[str], y: np.ndarray, folds: np.ndarray,
                     metrics: dict[str, Callable], chosen_by: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The candidates table (candidate, kind, a column per metric, log_loss, fold_std) of cross-validated
    OOF probabilities ``cv_oof``, and each candidate's per-fold score in ``chosen_by`` (what auto ranks by)."""
    candidates = pd.DataFrame({"candidate": list(cv_oof), "kind": ["model" if c in names else "blend" for c in cv_oof]})
    for metric_name, function in metrics.items():  # accuracy, balanced_accuracy, the competition's: a column each
        candidates[metric_name] = [function(cv_oof[c], y) for c in candidates["candidate"]]
    candidates["log_loss"] = [log_loss(cv_oof[c], y) for c in candidates["candidate"]]
    per_fold = {c: fold_accuracies(cv_oof[c], y, folds) for c in candidates["candidate"]}
    candidates["fold_std"] = [fold_std(per_fold[c]) for c in candidates["candidate"]]
    if chosen_by != "accuracy":  # the choice's per-fold scores in its own metric
        per_fold = {c: fold_accuracies(cv_oof[c], y, folds, metrics[chosen_by]) for c in candidates["candidate"]}
    return candidates, per_fold


def fold_wise_table(fold: int, names: list[str], P_oof: np.ndarray, y: np.ndarray, folds: np.ndarray,
                    P_fold: np.ndarray, settings: BlendSettings, metrics: dict[str, Callable], chosen_by: str,
                    fitted_without: dict, trained_priors: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:  # fmt: skip
    """The blend of the fold-``fold`` models' test predictions ``P_fold`` that labels the test clips for the
    next round's fold-k models, and why that candidate: everything in it comes from the other folds' rows.

    The candidate is chosen (``auto``) by a CV over the other folds only, each fitted candidate
    cross-validated within them (nested): with a single other fold a fitted candidate cannot be, and
    only the models and a mean that fits nothing are eligible. The chosen candidate is fitted without
    fold k's rows; EM starts from the other folds' label mix, calibrated on their rows. So fold k's
    labels never reach its own validation through the pseudo-labels, whichever candidate wins."""
    multi_label = y.ndim == 2
    rest = folds != fold
    P, y_rest, folds_rest = P_oof[:, rest], y[rest], folds[rest]
    inner = {name: P[i] for i, name in enumerate(names)}  # OOF rows of the other folds, fitted without fold k
    left_out = []
    for method in settings.candidates if len(names) > 1 else ():
        if len(np.unique(folds_rest)) > 1:
            inner[method] = cross_validated(method, P, y_rest, folds_rest, settings)[0]
        elif method == "mean" and not settings.temperature:  # fits nothing: its rows need no held-out fit
            inner[method] = apply_method(method, fit_method(method, P, y_rest, settings), P, not multi_label)
        else:
            left_out.append(method)
    if settings.method == "auto":
        table, per_fold = score_candidates(inner, names, y_rest, folds_rest, metrics, chosen_by)
        chosen, reason = choose_auto(table, per_fold, settings.choice_noise_se, chosen_by)
    else:
        chosen, reason = settings.method, f"{settings.method}: set by blend.method"
    if left_out:
        reason += f" ({', '.join(left_out)} left out: one other fold cannot cross-validate them without fold {fold})"
    fitted = None if chosen in names else fitted_without[chosen][fold]  # fitted on every row but fold k's
    test = P_fold[names.index(chosen)] if fitted is None else apply_with_temperatures(chosen, fitted, P_fold,
                                                                                      not multi_label)  # fmt: skip
    if settings.prior_correction == "em":
        n_labels = P_oof.shape[2]
        if settings.em_start == "calibrated":
            reference = np.bincount(y_rest, minlength=n_labels) / len(y_rest)
            # The chosen candidate's rows of the other folds, fitted without fold k (in-sample on them
            # only where blend.method names a fitted candidate that one other fold cannot cross-validate).
            rows = inner[chosen] if chosen in inner else apply_with_temperatures(chosen, fitted, P)
            test = apply_bias_corrected_temperature(test, *fit_bias_corrected_temperature(rows, y_rest))
        else:
            weights = None if fitted is None or chosen == "stacking" else pd.DataFrame({"model": names,
                                                                                        chosen: fitted[1]})
            reference = reference_prior(chosen, names, weights, trained_priors, y_rest, n_labels)
        test = em_prior(test, reference, max_ratio=settings.em_max_ratio)[0]
    return test, reason


def fit_blend(names: list[str], P_oof: np.ndarray, y: np.ndarray, folds: np.ndarray, P_test: np.ndarray,
              settings: BlendSettings, P_fold_tests: dict[int, np.ndarray] | None = None,
              trained_priors: dict[str, np.ndarray] | None = None, labels=None,
              metric: tuple[str, Callable] | None = None) -> Blend:  # fmt: skip
    """Score every candidate by honest CV, choose one, refit it on all OOF rows and apply it to the test.

    ``metric``: the competition's metric, (name, function of probabilities and true label numbers),
    where it is not accuracy (Freesound's MAP@3): a column of the candidates, and what ``auto`` ranks
    by unless the shift check finds a shift.
    ``P_fold_tests[k]`` (models, clips, classes): the fold-k models' test predictions; the chosen blend,
    fitted without fold k, is applied to them (``Blend.fold_tests``). ``trained_priors``: each model's
    training label mix, where EM prior correction starts. ``labels``: the names of the classes
    (the competition's labels; by default their numbers).
    """
    n_labels = P_oof.shape[2]
    labels = tuple(labels) if labels is not None else tuple(str(c) for c in range(n_labels))
    if settings.choose_by not in CHOOSE_BY:  # before the cross-validation, not after it
        raise BlendError(f"blend.choose_by {settings.choose_by!r}: one of {', '.join(CHOOSE_BY)}")
    multi_label = y.ndim == 2  # y multi-hot: each label's probability is a yes/no of its own
    if multi_label:
        settings = multi_label_settings(settings)
    metrics = metric_functions(metric)
    own_metric = metric[0] if metric else "accuracy"
    shift = shift_check(P_oof, P_test, settings.shift_ratio)
    chosen_by = ranking_metric(settings.choose_by, shift.shifted, own_metric, multi_label)
    if settings.prior_correction not in ("none", "em"):
        raise BlendError(f"blend.prior_correction {settings.prior_correction!r}: none | em")
    cv_oof, fitted_without = {name: P_oof[i] for i, name in enumerate(names)}, {}
    for method in settings.candidates if len(names) > 1 else ():
        cv_oof[method], fitted_without[method] = cross_validated(method, P_oof, y, folds, settings)
    candidates, per_fold = score_candidates(cv_oof, names, y, folds, metrics, chosen_by)
    if settings.method == "auto":
        chosen, reason = choose_auto(candidates, per_fold, settings.choice_noise_se, chosen_by)
        if settings.choose_by == "auto" and shift.shifted:
            reason += " (ranked by balanced accuracy: the shift check finds the test set shifted)"
    elif settings.method in cv_oof:
        chosen, reason = settings.method, f"{settings.method}: set by blend.method"
    else:
        raise BlendError(f"blend.method {settings.method!r} is neither auto, a blend method nor a model ({names})")
    candidates["chosen"] = candidates["candidate"] == chosen

    temperatures = _temperatures(P_oof, y, settings.temperature)
    weights = pd.DataFrame({"model": names, "temperature": 1.0 if temperatures is None else temperatures})
    states = {}
    for method in settings.candidates if len(names) > 1 else ():
        states[method] = fit_method(method, _scaled(P_oof, temperatures), y, settings)
        if method != "stacking":
            weights[method] = states[method]
    candidate_tests = {name: P_test[i] for i, name in enumerate(names)}
    for method, state in states.items():
        candidate_tests[method] = apply_method(method, state, _scaled(P_test, temperatures), not multi_label)
    test = candidate_tests[chosen]
    blend = Blend(chosen, candidates, weights, cv_oof[chosen], test, reason=reason, shift=shift, chosen_by=chosen_by,
                  labels=labels, candidate_tests=candidate_tests)  # fmt: skip
    for fold, P_fold in (P_fold_tests or {}).items():
        blend.fold_tests[fold], blend.fold_choices[fold] = fold_wise_table(
            fold, names, P_oof, y, folds, P_fold, settings, metrics, chosen_by, fitted_without, trained_priors or {})
    if settings.prior_correction == "em":
        if settings.em_start == "calibrated":
            # Calibrated on OOF rows, the probabilities carry the OOF label mix: EM starts there.
            blend.reference_prior = np.bincount(y, minlength=n_labels) / len(y)
            test = apply_bias_corrected_temperature(test, *fit_bias_corrected_temperature(cv_oof[chosen], y))
        else:
            blend.reference_prior = reference_prior(chosen, names, weights, trained_priors or {}, y, n_labels)
        blend.test, blend.test_prior = em_prior(test, blend.reference_prior, max_ratio=settings.em_max_ratio)
        blend.em_unbounded = em_prior(test, blend.reference_prior)[1]
    final_oof = blend.oof
    if settings.match_mix:
        # After EM (if on), the probabilities' mean is EM's estimate: the labels then carry that mix.
        blend.argmax_test = blend.test
        blend.test, blend.mix_weights = match_label_mix(blend.test)
        for fold, table in blend.fold_tests.items():
            blend.fold_tests[fold] = match_label_mix(table)[0]
        final_oof = match_label_mix(blend.oof)[0]  # the same rule on the OOF rows: the final CV
        blend.matched_oof_accuracy = accuracy(final_oof, y)
    # The final predictions' own CV row: the chosen candidate with the decision rule the test gets.
    final_row = {"candidate": "final", "kind": "final",
                 **{metric_name: function(final_oof, y) for metric_name, function in metrics.items()},
                 "log_loss": log_loss(final_oof, y), "fold_std": fold_std(fold_accuracies(final_oof, y, folds)),
                 "chosen": False}  # fmt: skip
    blend.candidates = pd.concat([blend.candidates, pd.DataFrame([final_row])], ignore_index=True)
    return blend


def trained_prior(metrics_paths: list, labels) -> np.ndarray:
    """A model's training label mix (``trained_share`` of its fold jobs' metrics), averaged over folds."""
    shares = [
        pd.read_csv(path).set_index("label").loc[list(labels), "trained_share"].to_numpy() for path in metrics_paths
    ]
    return np.mean(shares, axis=0)


def _probability_frame(values: np.ndarray, id_column: str, ids, labels, folds=None) -> pd.DataFrame:
    table = pd.DataFrame(values, columns=list(labels))
    table.insert(0, id_column, ids)
    if folds is not None:
        table.insert(1, "fold", folds)
    return table


def blend_tables(oof_paths: dict[str, list], test_paths: dict[str, str], truth: pd.DataFrame, fnames: list[str],
                 settings: BlendSettings, labels, fold_test_paths: dict[str, list] | None = None,
                 trained_priors: dict[str, np.ndarray] | None = None,
                 metric: tuple[str, Callable] | None = None,
                 multi_label: bool = False) -> tuple[Blend, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Read and check every model's OOF and test tables, blend them; returns the blend, its OOF table
    (id, fold, labels) and its test table (fname, labels). ``fold_test_paths[model]`` lists the model's
    per-fold test tables in fold order; a model without them (a teammate's) joins the fold-wise
    blends with its one test table. ``labels``: the competition's, in the tables' column order."""
    labels = tuple(labels)
    ids = truth.index
    given = {name for names in split_label_sets(truth["label"]) for name in names} if multi_label else set(truth["label"])
    unknown = sorted(given - set(labels))
    if unknown:
        raise BlendError(f"the folds hold labels {unknown[:5]} that are not the competition's: re-run the folds step")
    y = encode_labels(truth["label"], labels, multi_label)
    folds = truth["fold"].to_numpy()
    test_ids = pd.Index(fnames)
    names = list(oof_paths)

    def test_table(path):
        return align(read_table(path, "fname", labels), test_ids, "fname", path, labels, not multi_label)

    P_oof = np.stack([
        align(pd.concat([read_table(p, "id", labels) for p in oof_paths[name]], ignore_index=True), ids, "id",
              ", ".join(map(str, oof_paths[name])), labels, not multi_label)
        for name in names
    ])  # fmt: skip
    P_test = np.stack([test_table(test_paths[name]) for name in names])
    P_fold_tests = {}
    if fold_test_paths:
        for k, fold in enumerate(sorted(np.unique(folds))):
            P_fold_tests[int(fold)] = np.stack([
                test_table(fold_test_paths[name][k]) if name in fold_test_paths else P_test[names.index(name)]
                for name in names
            ])  # fmt: skip
    blend = fit_blend(names, P_oof, y, folds, P_test, settings, P_fold_tests, trained_priors, labels, metric)
    return (blend, _probability_frame(blend.oof, "id", ids, labels, folds),
            _probability_frame(blend.test, "fname", fnames, labels))  # fmt: skip


def label_mix(blend: Blend) -> pd.DataFrame:
    """Per label: the share the blend predicts on the test set and, with prior correction, the mix
    the blend's probabilities were made under and EM's estimate of the test's."""
    n_labels = len(blend.labels)
    predicted = np.bincount(blend.test.argmax(1), minlength=n_labels) / len(blend.test)
    table = pd.DataFrame({"label": blend.labels, "predicted": predicted})
    if blend.argmax_test is not None:
        argmax = np.bincount(blend.argmax_test.argmax(1), minlength=n_labels) / len(blend.test)
        table["argmax"] = argmax  # before match_mix
        table["mean_probability"] = blend.argmax_test.mean(0)  # the mix match_mix labels to
    if blend.test_prior is not None:
        table.insert(1, "trained_under", blend.reference_prior)
        table.insert(2, "em_estimate", blend.test_prior)
        table.insert(3, "em_unbounded", blend.em_unbounded)
    return table


def em_held_back(blend: Blend) -> dict[str, list[str]]:
    """The labels whose EM estimate the bound held down (unbounded EM wanted more) or up (less)."""
    if blend.test_prior is None:
        return {"down": [], "up": []}
    gap = blend.em_unbounded - blend.test_prior
    return {
        "down": [label for label, g in zip(blend.labels, gap) if g > 1e-3],
        "up": [label for label, g in zip(blend.labels, gap) if g < -1e-3],
    }


def candidate_labels(blend: Blend, fnames: list[str], submission_labels: Callable | None = None) -> pd.DataFrame:
    """Every candidate's test label (before prior correction), one column each, and the final one:
    what the hidden solution (or a later leaderboard) can score candidate by candidate.
    ``submission_labels(fnames, probabilities)``: the submission's label column (the competition's
    format: Freesound's three labels); by default each clip's most probable label."""
    if submission_labels is None:
        def submission_labels(_fnames, probabilities):
            return np.asarray(blend.labels)[probabilities.argmax(1)]
    table = pd.DataFrame({"fname": fnames})
    for name, probabilities in blend.candidate_tests.items():
        table[name] = np.asarray(submission_labels(fnames, probabilities))
    table["final"] = np.asarray(submission_labels(fnames, blend.test))
    return table


def fold_table(blend: Blend, fold: int, fnames: list[str]) -> pd.DataFrame:
    """The test table of the blend fitted without ``fold``, applied to the fold's own models."""
    return _probability_frame(blend.fold_tests[fold], "fname", fnames, blend.labels)
