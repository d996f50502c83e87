"""What one fold's job trains and validates on, and each epoch's plan of examples.

Data never passes through per-clip Python: an epoch is a few numpy arrays of clip numbers (and
noise windows for silence); :meth:`FoldData.cache_rows` turns each clip into one of its cache rows
(a random crop, for competitions of variable-length clips cached as windows), and
:mod:`wavefold.training.batches` gathers those rows into batches.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..cache import ClipWindows
from ..competitions import multi_hot
from ..settings.training import TrainSettings
from .sources import SILENCE, Sources

if TYPE_CHECKING:  # a type only: training runs on any competition's label space, passed in as data
    from ..competitions import LabelSpace

log = logging.getLogger(__name__)


def _empty() -> np.ndarray:
    return np.zeros(0, int)


@dataclass
class FoldData:
    """What one fold's job trains and validates on: clips (rows of the train manifest, each with its
    rows in the cache: ``windows``), offline variants, pseudo-labelled test clips; silence is noise windows."""

    clips: np.ndarray  # memory-mapped (cache rows, samples) int16
    variants: np.ndarray  # memory-mapped offline variants; epoch plans address them as n_clips + index
    variant_index: np.ndarray  # the variants of training-side clips
    variant_targets: np.ndarray
    noise: np.ndarray  # (samples,) int16, whole noise cache (small)
    train_rows: np.ndarray
    train_targets: np.ndarray  # class index in the label space
    train_noise: np.ndarray  # (k, 2) start, length of the training-side noise stretches
    val_rows: np.ndarray
    val_targets: np.ndarray
    val_ids: list[str]
    val_silence: pd.DataFrame  # start, gain, id of this fold's silence examples
    space: LabelSpace  # the classes the model learns, and the labels they fold into
    samples: int
    inner_rows: np.ndarray = field(default_factory=_empty)  # held-out training-side speakers (epoch_selection inner)
    inner_targets: np.ndarray = field(default_factory=_empty)
    pseudo_clips: np.ndarray | None = None  # the memory-mapped test cache; plans address it after the variants
    pseudo_rows: np.ndarray = field(default_factory=_empty)  # test-cache rows of pseudo-labelled clips
    pseudo_targets: np.ndarray = field(default_factory=_empty)
    # (len(pseudo_rows), classes): with soft pseudo-labels, the blend's probabilities each clip trains toward
    pseudo_probabilities: np.ndarray | None = None
    extra_noise: np.ndarray | None = None  # (k, samples) int16: pseudo-labelled silence, mixed in as noise
    windows: ClipWindows | None = None  # each clip's rows in ``clips`` (None: one row per clip)
    pseudo_windows: ClipWindows | None = None  # each test clip's rows in ``pseudo_clips``
    variant_clips: np.ndarray = field(default_factory=_empty)  # the clip each offline variant was made from
    # Multi-label competitions: every clip's labels, (clips, classes) multi-hot float32. The int targets
    # above are then each clip's rarest label, which the epoch's draws (balanced, pseudo mix) go by.
    label_sets: np.ndarray | None = None

    def __post_init__(self):
        if self.windows is None:
            self.windows = ClipWindows.one_each(len(self.clips))
        if self.pseudo_windows is None and self.pseudo_clips is not None:
            self.pseudo_windows = ClipWindows.one_each(len(self.pseudo_clips))

    @property
    def n_clips(self) -> int:
        """How many training clips (manifest rows) there are."""
        return len(self.windows)

    @property
    def sources(self) -> Sources:
        """How the epoch plans address this fold's examples (:mod:`.sources`)."""
        return Sources(self.n_clips, len(self.variants))

    def cache_rows(self, source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An epoch plan's ``source`` (clips, then variants, then test clips; -1: silence) as the rows
        :func:`.batches.gather` reads: each clip one of its cache rows, drawn by ``rng`` (a random crop
        of a clip cached as windows; with one row per clip, the clip's row)."""
        if self.windows.single and (self.pseudo_windows is None or self.pseudo_windows.single):
            return source
        plan, cache = self.sources.parts(source), Sources(len(self.clips), len(self.variants))
        rows = source.copy()
        rows[plan.clip.mask] = self.windows.random_rows(plan.clip.index, rng)
        rows[plan.variant.mask] = cache.of_variants(plan.variant.index)
        if plan.test.any():
            rows[plan.test.mask] = cache.of_tests(self.pseudo_windows.random_rows(plan.test.index, rng))
        return rows

    def fingerprint(self) -> str:
        """Which rows the job trains and validates on (a part of the job's identity, :mod:`.checkpoint`)."""
        digest = hashlib.sha256()
        parts = (
            self.train_rows,
            self.train_targets,
            self.val_rows,
            self.inner_rows,
            self.variant_index,
            self.pseudo_rows,
            self.pseudo_targets,
            self.train_noise,
        )
        for part in parts:
            digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
        for part in (self.pseudo_probabilities, self.label_sets):
            if part is not None:
                digest.update(np.ascontiguousarray(part, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]

    def batch_targets(self, source: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(batch, classes) float32 targets of an epoch plan's examples: one-hot of ``labels`` (a
        multi-label clip's, and its variants', every label), except the pseudo-labelled clips of soft
        pseudo-labels, which get the blend's probabilities."""
        targets = np.eye(len(self.space.classes), dtype=np.float32)[labels]
        parts = self.sources.parts(source)
        if self.label_sets is not None:
            targets[parts.clip.mask] = self.label_sets[parts.clip.index]
            targets[parts.variant.mask] = self.label_sets[self.variant_clips[parts.variant.index]]
        if self.pseudo_probabilities is not None and parts.test.any():
            order = self._pseudo_order
            where = order[np.searchsorted(self.pseudo_rows, parts.test.index, sorter=order)]
            targets[parts.test.mask] = self.pseudo_probabilities[where]
        return targets

    @property
    def label_space(self) -> list[str]:
        """The classes the model learns (the names its outputs and saved model carry)."""
        return list(self.space.classes)

    @property
    def silence_class(self) -> int | None:
        return self.space.silence_class

    @cached_property
    def _pseudo_order(self) -> np.ndarray:
        """The order that sorts ``pseudo_rows``: computed once, not at every training step."""
        return np.argsort(self.pseudo_rows, kind="stable")


def inner_speakers(speakers: pd.Series, share: float, seed: int) -> set:
    """``share`` of the distinct ``speakers`` (at least one, never all), drawn from ``seed``."""
    distinct = np.array(sorted(speakers.unique()))
    count = min(len(distinct) - 1, max(1, int(round(share * len(distinct)))))
    rng = np.random.default_rng([seed, 17])
    return set(rng.choice(distinct, size=count, replace=False)) if count > 0 else set()


def load_fold(
    clips: np.ndarray,
    noise: np.ndarray,
    folds: pd.DataFrame,
    silence: pd.DataFrame,
    segments: pd.DataFrame,
    fold: int,
    space: LabelSpace,
    variants: np.ndarray | None = None,
    variant_sources: np.ndarray | None = None,
    test_clips: np.ndarray | None = None,
    pseudo: pd.DataFrame | None = None,
    pseudo_noise: bool = False,
    inner_share: float = 0.0,
    seed: int = 0,
    pseudo_soft: bool = False,
    test_windows: ClipWindows | None = None,
) -> FoldData:
    """One fold's data. Offline variants (and their source rows) and pseudo-labelled test clips
    (``pseudo``: test-cache row and label) are optional; both only ever train. With ``inner_share``,
    that share of the training side's groups (speakers) is held out of training as an inner
    validation split (for choosing the epoch without looking at the fold). ``pseudo_soft``: the
    pseudo-labelled clips train toward the probabilities in ``pseudo`` (for models whose classes are
    the labels). A clip's class is its ``target`` where the space has that class (``words31``: the
    word), else its ``label``. The ``windows`` column of ``folds`` (and ``test_windows``) say which
    rows of the caches each clip has; ``variant_sources`` are rows of the train cache."""
    classes = space.classes
    index = {name: i for i, name in enumerate(classes)}
    label_sets = None
    if space.multi_label:
        label_sets = multi_hot(folds["label"], classes)
        # Rarity counted on the training side only: the fold's own labels never shape its training.
        targets = rarest_labels(label_sets, (folds["fold"] != fold).to_numpy())
    else:
        key = folds["target"].where(folds["target"].isin(classes), folds["label"])
        mapped = key.map(index)
        if mapped.isna().any():
            missing = sorted(set(key[mapped.isna()]))[:5]
            raise ValueError(f"training clips of classes {missing} that the label space {space.name} does not have")
        targets = mapped.to_numpy(int)
    is_val = (folds["fold"] == fold).to_numpy()
    is_inner = np.zeros(len(folds), bool)
    if inner_share > 0:
        held = inner_speakers(folds.loc[~is_val, "group"], inner_share, seed)
        is_inner = ~is_val & folds["group"].isin(held).to_numpy()
        log.info(
            "inner split: %d clips of %d training-side groups (speakers) held out for choosing the epoch",
            int(is_inner.sum()),
            len(held),
        )
    is_train = ~is_val & ~is_inner
    windows = ClipWindows.of_manifest(folds)
    if windows.rows != len(clips):
        raise ValueError(f"the train cache has {len(clips)} rows where the folds table's clips have {windows.rows}: "
                         "they come from different runs of the index; run the workflow again")  # fmt: skip
    own_silence = silence[silence["fold"] == fold].reset_index(drop=True)
    train_noise = segments[segments["fold"] != fold][["start", "length"]].to_numpy()
    if variants is None:
        variants, variant_sources = np.zeros((0, clips.shape[1]), np.int16), _empty()
    # A variant belongs to its source clip's fold (and inner split): only training-side variants are drawn.
    variant_clips = windows.clip_of(variant_sources) if len(variant_sources) else _empty()
    variant_index = np.flatnonzero(is_train[variant_clips]) if len(variant_clips) else _empty()
    pseudo_rows, pseudo_targets, extra_noise, pseudo_probabilities = _empty(), _empty(), None, None
    if pseudo is not None and len(pseudo):
        # A words31 model cannot learn catch-all ("unknown") test clips: it does not know which word they are.
        usable = pseudo["label"].isin(classes)
        if (~usable).any():
            log.info(
                "pseudo-labels: %d clips left out (%s): not a class of the %s label space",
                int((~usable).sum()),
                ", ".join(sorted(set(pseudo.loc[~usable, "label"]))),
                space.name,
            )
        pseudo_rows = pseudo.loc[usable, "row"].to_numpy()
        pseudo_targets = pseudo.loc[usable, "label"].map(index).to_numpy()
        if space.multi_label:
            # Every label of a clip is a yes/no of its own: soft, the blend's probability of each; hard,
            # the labels it gives at least 0.5, and its top label whatever its probability.
            values = pseudo.loc[usable, list(space.labels)].to_numpy(np.float32)
            if not pseudo_soft:
                hard = (values >= 0.5).astype(np.float32)
                hard[np.arange(len(values)), values.argmax(1)] = 1.0
                values = hard
            pseudo_probabilities = values
        elif pseudo_soft and not space.is_labels:
            log.info("pseudo-labels: hard labels for this %s model: the blend's labels do not say which of its "
                     "classes a clip is (pseudo_label.soft applies to models that learn the labels)", space.name)  # fmt: skip
        elif pseudo_soft:
            missing = set(space.labels) - set(pseudo.columns)
            if missing:
                raise ValueError(f"pseudo-labels without the probability columns {sorted(missing)}: made by an "
                                 "older pseudo_label step; re-run it (snakemake --forcerun pseudo_label)")  # fmt: skip
            values = pseudo.loc[usable, list(space.labels)].to_numpy(np.float64)
            pseudo_probabilities = (values / values.sum(1, keepdims=True)).astype(np.float32)
        if pseudo_noise and space.silence is not None:
            silent = np.sort(pseudo.loc[pseudo["label"] == space.silence, "row"].to_numpy())
            if len(silent) and test_windows is not None:
                silent = test_windows.all_rows(silent)[0]
            extra_noise = np.asarray(test_clips[silent]) if len(silent) else None
    return FoldData(
        clips=clips,
        variants=variants,
        variant_index=variant_index,
        variant_targets=targets[variant_clips[variant_index]] if len(variant_index) else _empty(),
        noise=noise,
        train_rows=np.flatnonzero(is_train),
        train_targets=targets[is_train],
        train_noise=train_noise,
        val_rows=np.flatnonzero(is_val),
        val_targets=targets[is_val],
        val_ids=folds.loc[is_val, "id"].tolist(),
        val_silence=own_silence,
        space=space,
        samples=clips.shape[1],
        inner_rows=np.flatnonzero(is_inner),
        inner_targets=targets[is_inner],
        pseudo_clips=test_clips,
        pseudo_rows=pseudo_rows,
        pseudo_targets=pseudo_targets,
        pseudo_probabilities=pseudo_probabilities,
        extra_noise=extra_noise,
        windows=windows,
        pseudo_windows=test_windows,
        variant_clips=variant_clips,
        label_sets=label_sets,
    )


def rarest_labels(label_sets: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """Each multi-label clip's rarest label (the fewest of the ``counted`` clips hold it; ties: the
    first): the class a clip is drawn as, so that balanced draws reach a rare label wherever it occurs."""
    counts = label_sets[counted if counted is not None else slice(None)].sum(0)
    rarity = np.where(label_sets > 0, counts[None, :], np.inf)
    if np.isinf(rarity).all(1).any():
        raise ValueError("training clips without a label: re-run the index step")
    return rarity.argmin(1)


def _labelled_rows(data: FoldData, settings: TrainSettings, rng: np.random.Generator) -> np.ndarray:
    """Which of the training side's labelled clips an epoch draws (positions in ``train_rows``)."""
    classes, targets = data.space.classes, data.train_targets
    silence_class = data.silence_class
    if settings.balanced:
        # Every class as often as the others; a small class is walked through in fresh permutations,
        # so no clip repeats before all of its class has been drawn.
        present = [c for c in range(len(classes)) if c != silence_class and (targets == c).any()]
        per_class = int(np.ceil(len(targets) / max(1, len(present))))
        chosen = []
        for c in present:
            members = np.flatnonzero(targets == c)
            cycles = int(np.ceil(per_class / len(members)))
            chosen.append(np.concatenate([rng.permutation(members) for _ in range(cycles)])[:per_class])
        return np.concatenate(chosen) if chosen else _empty()
    if settings.unknown_share is not None:
        if data.space.catch_all is None:
            raise ValueError("unknown_share: this competition has no catch-all ('unknown') label to draw a share "
                             "of; set it to null")  # fmt: skip
        # The classes scored as the catch-all label (speech: "unknown"; in the words31 space, its 20 words).
        unknown_class = np.array([c != silence_class and label == data.space.catch_all
                                  for c, label in enumerate(data.space.class_labels)])  # fmt: skip
        is_unknown = unknown_class[targets]
        known = np.flatnonzero(~is_unknown)
        wanted = int(round(len(known) * settings.unknown_share / max(1e-9, 1 - settings.unknown_share)))
        pool = np.flatnonzero(is_unknown)
        extra = rng.choice(pool, size=min(wanted, len(pool)), replace=False) if len(pool) else _empty()
        return np.concatenate([known, extra])
    return np.arange(len(targets))


def pseudo_draw(pseudo_targets: np.ndarray, labelled_targets: np.ndarray, wanted: int, silence_class: int | None,
                 silence_share: float, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Which pseudo-labelled clips an epoch draws: up to ``wanted``, in the class mix of the epoch's
    labelled draw (each class at most that share of ``wanted``, and at most what it has).

    Why not a uniform draw: under a shift the pseudo-labels lean to the class that unfamiliar audio
    goes to (on the hard-shift demo 93-97% of them were "unknown"); drawn uniformly they would raise
    that class's share of the epoch (~8% of a balanced draw to ~30%) and teach the next round to say
    it more: a collapse that feeds itself. Drawn in the labelled mix, they bring the test audio
    without moving the class prior the model learns. Silence, which the epoch adds from noise
    (``silence_share``), counts at that share."""
    size = int(max(pseudo_targets.max(), labelled_targets.max(initial=0), silence_class or 0)) + 1
    mix = np.bincount(labelled_targets, minlength=size).astype(float)
    if silence_class is not None:
        mix[silence_class] = mix.sum() * silence_share / max(1e-9, 1 - silence_share)
    mix = mix / max(1.0, mix.sum())
    picks = []
    for c in np.unique(pseudo_targets):
        members = np.flatnonzero(pseudo_targets == c)
        quota = min(len(members), int(round(wanted * mix[c])))
        if quota:
            picks.append(rng.choice(members, size=quota, replace=False))
    return np.sort(np.concatenate(picks)) if picks else _empty()


def epoch_plan(
    data: FoldData, settings: TrainSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's examples, shuffled: (cache row or -1 for silence, noise start for silence, target)."""
    silence_class = data.silence_class
    keep = _labelled_rows(data, settings, rng)
    clip_rows, clip_targets = data.train_rows[keep], data.train_targets[keep]
    n_pseudo = int(round(len(clip_rows) * settings.pseudo_share)) if len(data.pseudo_rows) else 0
    n_variants = min(len(data.variant_index), int(round(len(clip_rows) * settings.offline_share)))
    if n_variants:
        pick = rng.choice(len(data.variant_index), size=n_variants, replace=False)
        clip_rows = np.concatenate([clip_rows, data.sources.of_variants(data.variant_index[pick])])
        clip_targets = np.concatenate([clip_targets, data.variant_targets[pick]])
    if n_pseudo:
        pick = pseudo_draw(data.pseudo_targets, data.train_targets[keep], n_pseudo, silence_class,
                            settings.silence_share, rng)  # fmt: skip
        clip_rows = np.concatenate([clip_rows, data.sources.of_tests(data.pseudo_rows[pick])])
        clip_targets = np.concatenate([clip_targets, data.pseudo_targets[pick]])
    silence_share = settings.silence_share if silence_class is not None else 0.0  # no silence class: none cut
    n_silence = int(round(len(clip_rows) * silence_share / max(1e-9, 1 - silence_share)))
    starts = np.zeros(n_silence, dtype=np.int64)
    if n_silence and len(data.train_noise):
        lengths = data.train_noise[:, 1] - data.samples + 1
        stretch = rng.choice(len(data.train_noise), size=n_silence, p=lengths / lengths.sum())
        starts = data.train_noise[stretch, 0] + (rng.random(n_silence) * lengths[stretch]).astype(np.int64)
    source = np.concatenate([clip_rows, np.full(n_silence, SILENCE)])
    start = np.concatenate([np.zeros(len(clip_rows), np.int64), starts])
    target = np.concatenate([clip_targets, np.full(n_silence, -1 if silence_class is None else silence_class)])
    order = rng.permutation(len(source))
    return source[order], start[order], target[order]


def training_mix(data: FoldData, settings: TrainSettings, seed: int, epochs: int = 3) -> np.ndarray:
    """The class mix the model is trained under, in its label space: what its probabilities assume
    about the world (``balanced`` and ``unknown_share`` change it). Measured on a few epoch plans.
    Multi-label: each label's share of the drawn clips that hold it (the shares sum to more than 1)."""
    counts = np.zeros(len(data.space.classes))
    drawn = 0
    for epoch in range(epochs):
        source, _, target = epoch_plan(data, settings, np.random.default_rng([seed, 1000 + epoch]))
        if data.label_sets is not None:  # multi-label: how often each label is among a drawn clip's
            counts += data.batch_targets(source, target).sum(0)
            drawn += len(source)
        else:
            counts += np.bincount(target, minlength=len(data.space.classes))
    if data.label_sets is not None:
        return counts / max(1, drawn)
    return counts / max(1.0, counts.sum())
