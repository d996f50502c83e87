"""Fitting a blend: every candidate cross-validated over the models' folds, one chosen, refitted on all
OOF rows and applied to the test; the fold-wise blends that label the next round's pseudo-labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..metrics import log_loss
from .calibration import (apply_bias_corrected_temperature, em_prior, fit_bias_corrected_temperature,
                          fit_temperature, match_label_mix, reference_prior, scale_temperature)
from .candidates import REGISTRY, apply_method, fit_method
from .choice import choose_auto, multi_label_settings, score_candidates
from .scoring import CHOOSE_BY, accuracy, fold_accuracies, fold_std, metric_functions, ranking_metric
from .settings import BlendError, BlendSettings
from .shift import ShiftCheck, shift_check


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
    recipe: dict = field(default_factory=dict)  # how to make ``test`` from the members' test probabilities (JSON)


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


def apply_with_temperatures(method: str, fitted, P: np.ndarray, single_label: bool = True) -> np.ndarray:
    temperatures, state = fitted
    return apply_method(method, state, _scaled(P, temperatures), single_label)


def cross_validated(method: str, P: np.ndarray, y: np.ndarray, folds: np.ndarray,
                    settings: BlendSettings) -> tuple[np.ndarray, dict]:  # fmt: skip
    """OOF probabilities of a combiner fitted fold by fold on the other folds' rows, and those fits
    by held-out fold (they also make the fold-wise test tables of the pseudo-labels)."""
    out, fitted = np.zeros(P.shape[1:]), {}
    for fold in np.unique(folds):
        held = folds == fold
        fitted[int(fold)] = fit_with_temperatures(method, P[:, ~held], y[~held], settings)
        out[held] = apply_with_temperatures(method, fitted[int(fold)], P[:, held], single_label=y.ndim == 1)
    return out, fitted


def candidates_cross_validated(names: list[str], P: np.ndarray, y: np.ndarray, folds: np.ndarray,
                               settings: BlendSettings) -> tuple[dict[str, np.ndarray], dict, list[str]]:  # fmt: skip
    """Every candidate's OOF probabilities on these rows: each model's own, and each blend method's
    fitted fold by fold on the other folds' rows (:func:`cross_validated`). With a single fold a
    method that fits something cannot be scored so and is left out; one that fits nothing (the mean,
    without temperatures) needs no held-out fit. Returns (OOF by candidate, fits by method and
    held-out fold, the methods left out)."""
    cv_oof = {name: P[i] for i, name in enumerate(names)}
    fitted, left_out = {}, []
    for method in settings.candidates if len(names) > 1 else ():
        if len(np.unique(folds)) > 1:
            cv_oof[method], fitted[method] = cross_validated(method, P, y, folds, settings)
        elif not REGISTRY[method].fits and not settings.temperature:
            cv_oof[method] = apply_method(method, fit_method(method, P, y, settings), P, y.ndim == 1)
        else:
            left_out.append(method)
    return cv_oof, fitted, left_out


@dataclass(frozen=True)
class Predictions:
    """What a blend is fitted on and applied to: the models' OOF probabilities (models, rows, labels)
    on the rows the CV scores, their true labels (label numbers, or a multi-hot matrix) and folds,
    and the models' test probabilities (models, clips, labels); ``fold_tests[k]``: the fold-k
    models' test probabilities; ``trained_priors``: each model's training label mix (where EM may
    start); ``labels``: the labels' names (by default their numbers)."""

    names: list[str]
    oof: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    test: np.ndarray
    fold_tests: dict[int, np.ndarray] = field(default_factory=dict)
    trained_priors: dict[str, np.ndarray] = field(default_factory=dict)
    labels: tuple | None = None

    @property
    def multi_label(self) -> bool:
        return self.y.ndim == 2  # y multi-hot: each label's probability is a yes/no of its own

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.labels) if self.labels is not None else tuple(str(c) for c in range(self.oof.shape[2]))


def fold_wise_table(fold: int, data: Predictions, settings: BlendSettings, metrics: dict[str, Callable],
                    chosen_by: str, fitted_without: dict) -> tuple[np.ndarray, str]:  # fmt: skip
    """The blend of the fold-``fold`` models' test predictions that labels the test clips for the next
    round's fold-k models, and why that candidate: everything in it comes from the other folds' rows.

    The candidate is chosen (``auto``) by a CV over the other folds only, each fitted candidate
    cross-validated within them (nested): with a single other fold a fitted candidate cannot be, and
    only the models and a mean that fits nothing are eligible. The chosen candidate is fitted without
    fold k's rows; EM starts from the other folds' label mix, calibrated on their rows. So fold k's
    labels never reach its own validation through the pseudo-labels, whichever candidate wins."""
    names, P_fold, single_label = data.names, data.fold_tests[fold], not data.multi_label
    rest = data.folds != fold
    P, y_rest, folds_rest = data.oof[:, rest], data.y[rest], data.folds[rest]
    inner, _, left_out = candidates_cross_validated(names, P, y_rest, folds_rest, settings)
    if settings.method == "auto":
        table, per_fold = score_candidates(inner, names, y_rest, folds_rest, metrics, chosen_by)
        chosen, reason = choose_auto(table, per_fold, settings.choice_noise_se, chosen_by)
    else:
        chosen, reason = settings.method, f"{settings.method}: set by blend.method"
    if left_out:
        reason += f" ({', '.join(left_out)} left out: one other fold cannot cross-validate them without fold {fold})"
    fitted = None if chosen in names else fitted_without[chosen][fold]  # fitted on every row but fold k's
    test = P_fold[names.index(chosen)] if fitted is None else apply_with_temperatures(chosen, fitted, P_fold,
                                                                                      single_label)  # fmt: skip
    if settings.prior_correction == "em":
        n_labels = data.oof.shape[2]
        if settings.em_start == "calibrated":
            reference = np.bincount(y_rest, minlength=n_labels) / len(y_rest)
            # The chosen candidate's rows of the other folds, fitted without fold k (in-sample on them
            # only where blend.method names a fitted candidate that one other fold cannot cross-validate).
            rows = inner[chosen] if chosen in inner else apply_with_temperatures(chosen, fitted, P)
            test = apply_bias_corrected_temperature(test, *fit_bias_corrected_temperature(rows, y_rest))
        else:
            weights = None if fitted is None or not REGISTRY[chosen].weights else pd.DataFrame({"model": names,
                                                                                                chosen: fitted[1]})
            reference = reference_prior(chosen, names, weights, data.trained_priors, y_rest, n_labels)
        test = em_prior(test, reference, max_ratio=settings.em_max_ratio)[0]
    return test, reason


def checked(settings: BlendSettings, multi_label: bool) -> BlendSettings:
    """``settings`` checked where a job is called without the workflow (which checks them when parsed),
    less what a multi-label blend leaves out."""
    if settings.choose_by not in CHOOSE_BY:  # before the cross-validation, not after it
        raise BlendError(f"blend.choose_by {settings.choose_by!r}: one of {', '.join(CHOOSE_BY)}")
    if settings.prior_correction not in ("none", "em"):
        raise BlendError(f"blend.prior_correction {settings.prior_correction!r}: none | em")
    return multi_label_settings(settings) if multi_label else settings


def fit_blend(data: Predictions, settings: BlendSettings, metric: tuple[str, Callable] | None = None) -> Blend:
    """Score every candidate by honest CV, choose one, refit it on all OOF rows and apply it to the test.

    ``metric``: the competition's metric, (name, function of probabilities and true label numbers),
    where it is not accuracy (Freesound's MAP@3): a column of the candidates, and what ``auto`` ranks
    by unless the shift check finds a shift. The chosen blend, fitted without fold k, is also applied
    to the fold-k models' test predictions (``Blend.fold_tests``).
    """
    names, P_oof, y, folds, P_test = data.names, data.oof, data.y, data.folds, data.test
    settings = checked(settings, data.multi_label)
    metrics = metric_functions(metric)
    shift = shift_check(P_oof, P_test, settings.shift_ratio)
    chosen_by = ranking_metric(settings.choose_by, shift.shifted, metric[0] if metric else "accuracy", data.multi_label)
    cv_oof, fitted_without, _ = candidates_cross_validated(names, P_oof, y, folds, settings)
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

    weights, candidate_tests, temperatures, states = refit(data, settings)
    blend = Blend(chosen, candidates, weights, cv_oof[chosen], candidate_tests[chosen], reason=reason, shift=shift,
                  chosen_by=chosen_by, labels=data.label_names, candidate_tests=candidate_tests)  # fmt: skip
    blend.recipe = recipe(chosen, data, temperatures, states)
    for fold in data.fold_tests:
        blend.fold_tests[fold], blend.fold_choices[fold] = fold_wise_table(fold, data, settings, metrics, chosen_by,
                                                                           fitted_without)  # fmt: skip
    if settings.prior_correction == "em":
        correct_prior(blend, data, settings)
    final_oof = blend.oof
    if settings.match_mix:
        # After EM (if on), the probabilities' mean is EM's estimate: the labels then carry that mix.
        blend.argmax_test = blend.test
        blend.test, blend.mix_weights = match_label_mix(blend.test)
        blend.recipe["match_mix"] = True
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


def refit(data: Predictions, settings: BlendSettings) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray | None, dict]:
    """Every candidate fitted on all OOF rows and applied to the test: (the models' temperatures and
    each weighted candidate's weights, every candidate's test probabilities, the temperatures, each
    method's fitted state)."""
    temperatures = _temperatures(data.oof, data.y, settings.temperature)
    weights = pd.DataFrame({"model": data.names, "temperature": 1.0 if temperatures is None else temperatures})
    candidate_tests, states = {name: data.test[i] for i, name in enumerate(data.names)}, {}
    for method in settings.candidates if len(data.names) > 1 else ():
        states[method] = state = fit_method(method, _scaled(data.oof, temperatures), data.y, settings)
        if REGISTRY[method].weights:
            weights[method] = state
        candidate_tests[method] = apply_method(method, state, _scaled(data.test, temperatures), not data.multi_label)
    return weights, candidate_tests, temperatures, states


def recipe(chosen: str, data: Predictions, temperatures: np.ndarray | None, states: dict) -> dict:
    """The chosen blend as data (JSON): what :func:`wavefold.kernel.portable.blend.apply_blend` needs to
    make the blend's test probabilities from the members' (``members``: their order in P). EM and
    label-mix matching are added where they are applied."""
    out = {"members": list(data.names), "multi_label": data.multi_label, "labels": list(data.label_names),
           "temperatures": None, "em": None, "match_mix": False}  # fmt: skip
    if chosen in data.names:
        out["combine"] = {"kind": "member", "member": data.names.index(chosen), "candidate": chosen}
        return out
    out["temperatures"] = None if temperatures is None else [float(t) for t in temperatures]
    state = states[chosen]
    if REGISTRY[chosen].weights:
        out["combine"] = {"kind": "weights", "weights": [float(w) for w in state]}
    elif chosen == "stacking":
        out["combine"] = {"kind": "stacking", "coef": state.coef_.tolist(), "intercept": state.intercept_.tolist(),
                          "classes": [int(c) for c in state.classes_]}  # fmt: skip
    else:  # a combiner of a kind the notebook does not know (rule package refuses it, naming it)
        out["combine"] = {"kind": "unsupported"}
    out["combine"]["candidate"] = chosen
    return out


def correct_prior(blend: Blend, data: Predictions, settings: BlendSettings) -> None:
    """EM's estimate of the test's label mix, and the test probabilities adjusted to it (bounded)."""
    n_labels, y, test = data.oof.shape[2], data.y, blend.test
    calibration = None
    if settings.em_start == "calibrated":
        # Calibrated on OOF rows, the probabilities carry the OOF label mix: EM starts there.
        blend.reference_prior = np.bincount(y, minlength=n_labels) / len(y)
        temperature, bias = fit_bias_corrected_temperature(blend.oof, y)
        test = apply_bias_corrected_temperature(test, temperature, bias)
        calibration = {"temperature": float(temperature), "bias": [float(b) for b in bias]}
    else:
        blend.reference_prior = reference_prior(blend.chosen, data.names, blend.weights, data.trained_priors, y,
                                                n_labels)  # fmt: skip
    blend.test, blend.test_prior = em_prior(test, blend.reference_prior, max_ratio=settings.em_max_ratio)
    blend.em_unbounded = em_prior(test, blend.reference_prior)[1]
    blend.recipe["em"] = {"reference": [float(p) for p in blend.reference_prior], "max_ratio": settings.em_max_ratio,
                          "calibration": calibration}  # fmt: skip
