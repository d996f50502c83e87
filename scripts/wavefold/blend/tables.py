"""Probability tables in and out: read and checked (naming the file and the fix), aligned to the rows
the CV scores, blended (:func:`blend_tables`), and the blend's tables and label mix written."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..competitions import encode_labels, split_label_sets
from ..folds import truth_table  # noqa: F401 (the rows a blend is scored on: the folds')
from ..metrics import EPS
from .fit import Blend, Predictions, fit_blend
from .settings import BlendError, BlendSettings


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
    blend = fit_blend(Predictions(names, P_oof, y, folds, P_test, P_fold_tests, trained_priors or {}, labels), settings,
                      metric)  # fmt: skip
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
