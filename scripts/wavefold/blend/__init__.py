"""Blending the out-of-fold probabilities of several models, and applying the blend to the test set.

Every combiner is fitted on out-of-fold (OOF) probabilities only, and every combiner that learns
something (weights, temperatures, a stacker) is scored by cross-validation over the same folds the
models were trained on: fitted on the other folds' OOF rows, scored on the held-out fold. So the CV
of a blend is as honest as the CV of a single model, and choosing the best candidate by that CV
(the single models are candidates too) never picks a blend that only looks better because it saw
its own validation rows.

Candidates (:data:`.candidates.REGISTRY`, declared once: the settings' allowed values, ``auto``'s
order and the multi-label policy derive from it):
  - every single model;
  - ``mean``: the plain average;
  - ``logloss``: non-negative weights summing to 1 that minimise the log-loss (scipy, SLSQP);
  - ``accuracy``: Caruana et al. (2004) greedy ensemble selection with replacement, which climbs
    accuracy directly (log-loss breaks ties) — the usual Kaggle answer to a non-smooth metric;
  - ``stacking``: a multinomial logistic regression (scikit-learn) on the models' log-probabilities.
Optionally each model is temperature-scaled first (one temperature per model, fitted on OOF).

``auto`` chooses by CV, but not blindly (:mod:`.choice`): a candidate that fits more to the OOF
rows (weights, then a stacker) is chosen over a simpler one only if its CV gain exceeds the
fold-to-fold noise — the standard error of the paired per-fold differences, times
``choice_noise_se`` (the one-standard-error rule). A stacker that wins CV by 0.4 points on 3 folds
has learned the OOF label mix as much as anything; under a shifted test set the plain mean holds up
better. It ranks by accuracy on the OOF rows, or by balanced accuracy (``choose_by``); by default
(``auto``) by balanced accuracy only where a label-free shift check (:mod:`.shift`: do the models
disagree far more often on the test clips than on the OOF rows?) finds the test set shifted.

Optionally the test probabilities are corrected toward the test set's class prior, re-estimated by
EM (Saerens, Latinne & Decaestecker, 2002), bounded by ``em_max_ratio`` and started from the chosen
blend calibrated on its OOF rows by bias-corrected temperature scaling (Alexandari, Kundaje &
Shrikumar, 2020) or from the models' training mix (``em_start``); or the labels are matched to the
probabilities' own mix (``match_mix``): :mod:`.calibration` says why each.

Besides the blend of all fold models, a blend is made fold by fold, of the test predictions of the
fold-k models only (which never trained on fold k): chosen by a CV over the other folds, fitted and
calibrated on their rows, EM started from their label mix (:func:`.fit.fold_wise_table`). Those
tables label the test clips that train the next round's fold-k models (:mod:`wavefold.pseudo`), so
that no fold's labels reach its own validation through the pseudo-labels.

Multi-label competitions (the true labels a multi-hot matrix): the log-loss is every label's binary
cross-entropy, accuracy the share of rows whose top label is true; what assumes one label per clip
is left out, and the log says so (:func:`.choice.multi_label_settings`).

Modules: :mod:`.settings`, :mod:`.scoring` (the metrics candidates are ranked by), :mod:`.shift`,
:mod:`.calibration`, :mod:`.candidates` (the registry and its combiners), :mod:`.choice`,
:mod:`.fit` (:func:`fit_blend`), :mod:`.tables` (files in and out).
"""

from .calibration import (apply_bias_corrected_temperature, bound_prior, em_prior, fit_bias_corrected_temperature,
                          fit_temperature, match_label_mix, normalise, reference_prior, scale_temperature)
from .candidates import (COMPLEXITY, METHODS, REGISTRY, SINGLE_LABEL_ONLY, Candidate, apply_stacker,
                         fit_accuracy_weights, fit_logloss_weights, fit_stacker)
from .choice import choose_auto, chosen_candidate, multi_label_settings, score_candidates
from .fit import Blend, Predictions, cross_validated, fit_blend, fold_wise_table
from .scoring import (CHOICE_METRICS, CHOOSE_BY, accuracy, balanced_accuracy, competition_metric, fold_accuracies,
                      fold_std, metric_functions, paired_noise, ranking_metric)
from .settings import NOT_FIT_SETTINGS, BlendError, BlendSettings
from .shift import ShiftCheck, shift_check
from .tables import (align, blend_tables, candidate_labels, em_held_back, fold_table, label_mix, read_table,
                     trained_prior, truth_table)  # fmt: skip

__all__ = [
    "COMPLEXITY", "CHOICE_METRICS", "CHOOSE_BY", "METHODS", "NOT_FIT_SETTINGS", "REGISTRY", "SINGLE_LABEL_ONLY",
    "Blend", "BlendError", "BlendSettings", "Candidate", "Predictions", "ShiftCheck", "accuracy", "align",
    "apply_bias_corrected_temperature", "apply_stacker", "balanced_accuracy", "blend_tables", "bound_prior",
    "candidate_labels", "choose_auto", "chosen_candidate", "competition_metric", "cross_validated", "em_held_back",
    "em_prior", "fit_accuracy_weights", "fit_bias_corrected_temperature", "fit_blend", "fit_logloss_weights",
    "fit_stacker", "fit_temperature", "fold_accuracies", "fold_std", "fold_table", "fold_wise_table", "label_mix",
    "match_label_mix", "metric_functions", "multi_label_settings", "normalise", "paired_noise", "ranking_metric",
    "read_table", "reference_prior", "scale_temperature", "score_candidates", "shift_check", "trained_prior",
    "truth_table",
]  # fmt: skip
