"""Cross-validation folds: stratified, grouped (by speaker), with silence cut from fold-owned noise.

Clips come from scikit-learn's ``StratifiedGroupKFold``: a group's clips (a speaker's, in the speech
challenge) all land in one fold, and each fold gets about the same share of every target class
(hence of every label). A competition without labelled silence has it cut from the background
recordings. Each recording is split into
``n_folds`` contiguous stretches and each stretch belongs to one fold, so a silence example of a
validation fold (and, later, the noise mixed into its training side) never shares a sample of
audio with another fold.

A multi-label competition's clips hold label sets, which ``StratifiedGroupKFold`` cannot stratify:
there the groups are split by iterative stratification (Sechidis, Tsoumakas & Vlahavas, 2011;
``MultilabelStratifiedKFold`` of the iterative-stratification package), each group standing for the
union of its clips' labels, so that every fold gets about its share of every label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .competitions import explode_label_sets, multi_hot
from .errors import ExplainedError


class FoldError(ExplainedError, ValueError):
    pass


def one_row_per_label(table: pd.DataFrame, multi_label: bool) -> pd.DataFrame:
    """``table`` with a multi-label clip's row repeated for each of its labels (``label`` one label)."""
    if not multi_label:
        return table
    exploded = explode_label_sets(table["label"])
    return table.loc[exploded.index].assign(label=exploded.to_numpy())


def check_fold_count(train: pd.DataFrame, noise: pd.DataFrame, n_folds: int, clip_samples: int,
                     needs_noise: bool = True, multi_label: bool = False) -> None:  # fmt: skip
    """Raise :class:`FoldError` naming ``folds.n_folds`` and the largest count that works, unless every
    fold can get groups of its own, clips of every label, and (``needs_noise``: the competition's
    silence is cut from noise) a stretch of noise to cut silence from."""
    problems, limits = [], []
    groups = train["group"].nunique()
    if groups < n_folds:
        problems.append(f"the training set has only {groups} speakers (groups); each fold needs groups of its own")
        limits.append(groups)
    per_label = one_row_per_label(train, multi_label).groupby("label")["group"].nunique()
    short = per_label[per_label < n_folds]
    if len(short):
        examples = ", ".join(f"'{label}' {count}" for label, count in short.sort_values().head(3).items())
        problems.append(f"some labels have fewer speakers (groups) than folds ({examples}): a fold would have none "
                        "to validate on")  # fmt: skip
        limits.append(int(short.min()))
    longest = int(noise["length"].max()) if len(noise) else 0
    if needs_noise and longest // clip_samples < n_folds:
        problems.append(f"the longest background recording holds {longest // clip_samples} clips of audio: too few "
                        f"to give every fold a stretch of its own to cut silence from")  # fmt: skip
        limits.append(longest // clip_samples)
    if problems:
        limit = min(limits)
        fix = f"Set folds.n_folds to at most {limit}." if limit >= 2 else "Not even 2 folds fit these data."
        raise FoldError(f"folds.n_folds is {n_folds}, but " + "; ".join(problems) + f". {fix}")


def assign_folds(train: pd.DataFrame, n_folds: int, seed: int, multi_label_labels=None) -> np.ndarray:
    """Fold number (0..n_folds-1) of every row of the train manifest. ``multi_label_labels``: a
    multi-label competition's labels (its ``label`` column holds label sets)."""
    groups = train["group"].nunique()
    if groups < n_folds:
        raise FoldError(
            f"folds.n_folds is {n_folds} but the training set has only {groups} speakers (groups); "
            f"each fold needs groups of its own. Lower folds.n_folds."
        )
    if multi_label_labels is not None:
        return _multilabel_folds(train, n_folds, seed, multi_label_labels)
    from sklearn.model_selection import StratifiedGroupKFold  # here: the blend's jobs import this module too

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(train), -1, dtype=int)
    try:
        splits = list(splitter.split(np.zeros(len(train)), train["target"], train["group"]))
    except ValueError as error:
        raise FoldError(
            f"folds.n_folds is {n_folds}: the folds cannot be made ({error}). Lower folds.n_folds."
        ) from error
    for k, (_train_rows, validation_rows) in enumerate(splits):
        fold[validation_rows] = k
    return fold


def _multilabel_folds(train: pd.DataFrame, n_folds: int, seed: int, labels) -> np.ndarray:
    """Iterative stratification of the groups on the union of their clips' labels."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    codes, groups = pd.factorize(train["group"], sort=True)
    per_group = np.zeros((len(groups), len(labels)), dtype=np.int8)
    np.maximum.at(per_group, codes, multi_hot(train["label"], labels).astype(np.int8))
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    group_fold = np.full(len(groups), -1, dtype=int)
    for k, (_rest, held) in enumerate(splitter.split(np.zeros(len(groups)), per_group)):
        group_fold[held] = k
    return group_fold[codes]


def noise_segments(noise: pd.DataFrame, n_folds: int, min_length: int) -> pd.DataFrame:
    """Split each recording (``name``, ``start``, ``length`` in the noise cache) into one stretch per fold.

    The stretch order is rotated from one recording to the next, so that no fold always gets the
    beginnings. Recordings too short to give every fold ``min_length`` samples are left out.
    """
    rows = []
    for index, recording in enumerate(noise.itertuples(index=False)):
        edges = np.linspace(0, recording.length, n_folds + 1).astype(int)
        if np.min(np.diff(edges)) < min_length:
            continue
        for piece in range(n_folds):
            rows.append({
                "name": recording.name, "fold": (piece + index) % n_folds,
                "start": recording.start + edges[piece], "length": edges[piece + 1] - edges[piece],
            })  # fmt: skip
    return pd.DataFrame(rows, columns=["name", "fold", "start", "length"])


def silence_clips(segments: pd.DataFrame, per_fold: dict[int, int], clip_samples: int, seed: int,
                  label: str = "silence") -> pd.DataFrame:  # fmt: skip
    """Silence examples of each fold, as (start, gain) windows inside that fold's own noise stretches.

    A tenth are digital silence (gain 0); the rest are noise at -40..0 dB, as quiet rooms are.
    """
    rng = np.random.default_rng([seed, 7])
    rows = []
    for fold, count in sorted(per_fold.items()):
        own = segments[segments["fold"] == fold].reset_index(drop=True)
        if own.empty and count:
            raise FoldError(f"no background noise long enough to cut silence for fold {fold}")
        weights = own["length"] - clip_samples + 1
        for i in range(count):
            seg = own.iloc[rng.choice(len(own), p=weights / weights.sum())]
            start = int(seg["start"] + rng.integers(0, seg["length"] - clip_samples + 1))
            gain = 0.0 if rng.random() < 0.1 else float(10 ** (rng.uniform(-40, 0) / 20))
            rows.append({"id": f"silence/{fold}_{i:05d}", "fold": fold, "noise": seg["name"],
                         "start": start, "gain": round(gain, 6), "label": label})  # fmt: skip
    return pd.DataFrame(rows, columns=["id", "fold", "noise", "start", "gain", "label"])


def silence_per_fold(fold_sizes: pd.Series, silence_share: float) -> dict[int, int]:
    """How many silence examples each fold gets so that silence is ``silence_share`` of the fold."""
    return {int(k): int(round(n * silence_share / (1 - silence_share))) for k, n in fold_sizes.items()}


def check_no_leakage(folds: pd.DataFrame, segments: pd.DataFrame, silence: pd.DataFrame, clip_samples: int) -> None:
    """Raise :class:`FoldError` if a group (speaker) or a stretch of noise sits in two folds."""
    spread = folds.groupby("group")["fold"].nunique()
    if (spread > 1).any():
        raise FoldError(f"groups (speakers) in several folds: {list(spread[spread > 1].index[:5])}")
    for clip in silence.itertuples(index=False):
        own = segments[(segments["fold"] == clip.fold) & (segments["name"] == clip.noise)]
        inside = (own["start"] <= clip.start) & (clip.start + clip_samples <= own["start"] + own["length"])
        if not inside.any():
            raise FoldError(f"silence clip {clip.id} reaches outside the noise of fold {clip.fold}")


def summary(folds: pd.DataFrame, silence: pd.DataFrame, labels, multi_label: bool = False) -> pd.DataFrame:
    """Clips per fold and label (``labels``: the competition's; a multi-label clip counts under each of
    its labels), plus groups (speakers) per fold: the table the fold step reports."""
    table = pd.concat([one_row_per_label(folds[["fold", "label"]], multi_label), silence[["fold", "label"]]])
    counts = table.pivot_table(index="fold", columns="label", aggfunc="size", fill_value=0)
    counts = counts.reindex(columns=list(labels), fill_value=0)
    if multi_label:  # clips, not labels
        per_fold = pd.concat([folds["fold"], silence["fold"]]).value_counts()
        counts["clips"] = per_fold.reindex(counts.index, fill_value=0)
    else:
        counts["clips"] = counts.sum(axis=1)
    counts["groups"] = folds.groupby("fold")["group"].nunique()
    counts.loc["all"] = counts.sum()
    counts.loc["all", "groups"] = folds["group"].nunique()
    return counts.astype(int)

def truth_table(folds: pd.DataFrame, silence: pd.DataFrame) -> pd.DataFrame:
    """Every OOF clip the CV is scored on, with its fold and label: the labelled clips whose labels
    are to be trusted (``scored``: Freesound's manually verified ones, as every test label is) and
    the silence examples. The blend is fitted and scored on these rows only."""
    columns = ["id", "fold", "label"]
    if "scored" in folds.columns:
        folds = folds[folds["scored"].astype(bool)]
    return pd.concat([folds[columns], silence[columns]], ignore_index=True).set_index("id")
