"""Competitions as data: what is specific to one Kaggle competition, behind one interface.

Every stage of the workflow (cache, folds, training, blend, pseudo-labels, submission, submit)
takes a :class:`Competition` — or the plain values it holds, such as its ``labels`` — as an
argument; none imports a competition's constants. ``competition:`` in the config names one by its
Kaggle slug, and :func:`get` loads it.

A competition module (``competitions/<module>.py``) defines a subclass of :class:`Competition` and
an instance named ``COMPETITION``. README, "Add a competition", says what it must provide.

Modules are loaded by name, on demand (:func:`get`), never all at once: so the workflow's
dependency scan (:mod:`wavefold.dependencies`) sees only the selected competition's module, and
editing another competition re-runs nothing.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..kernel.portable.submission import submission_rows

#: Kaggle slug -> module under this package.
MODULES = {
    "tensorflow-speech-recognition-challenge": "tensorflow_speech",
    "freesound-audio-tagging": "freesound_audio_tagging",
    "freesound-audio-tagging-2019": "freesound_audio_tagging_2019",
}


class UnknownCompetition(ValueError):
    pass


#: How a multi-label competition's clip holds several labels in the workflow's tables (the ``label``
#: and ``target`` columns of the index and folds, a solution's ``label``): joined by a comma, as
#: Freesound 2019's ``train_curated.csv`` writes them. Single-label competitions hold one label there.
LABEL_SET_SEPARATOR = ","


def split_label_sets(values) -> list[list[str]]:
    """Each value's labels (a multi-label table's ``label`` column -> a list of lists)."""
    return [[part for part in str(value).split(LABEL_SET_SEPARATOR) if part] for value in values]


def explode_label_sets(values: pd.Series) -> pd.Series:
    """A label-set column with one row per (row, label), the index repeated: a clip under each label."""
    return values.astype(str).str.split(LABEL_SET_SEPARATOR).explode()


def multi_hot(values, labels) -> np.ndarray:
    """(rows, labels) float32: 1 where the row's label set holds the label."""
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(values), len(labels)), dtype=np.float32)
    for row, names in enumerate(split_label_sets(values)):
        unknown = [name for name in names if name not in index]
        if unknown:
            raise ValueError(f"labels {unknown[:3]} are not the competition's: re-run the index step")
        out[row, [index[name] for name in names]] = 1.0
    return out


def encode_labels(values, labels, multi_label: bool = False) -> np.ndarray:
    """The true labels of rows as the metrics take them: label numbers (rows,) of a single-label
    competition, a multi-hot matrix (rows, labels) of a multi-label one."""
    if multi_label:
        return multi_hot(values, labels)
    labels = list(labels)
    return pd.Series(list(values)).map(labels.index).to_numpy()


def problem_row(split: str, path: str, problem: str, detail: str, action: str) -> dict:
    """One row of the index's problems file: a file of ``split`` and what was done about it."""
    return {"split": split, "path": path, "problem": problem, "detail": detail, "action": action}


@dataclass(frozen=True)
class LabelSpace:
    """The classes a model learns, and how they fold into the submission's labels.

    ``classes``: what the model's outputs are (the speech challenge's ``words31``: 30 words and
    silence); ``class_labels``: the submission label of each class (``marvin`` -> ``unknown``);
    ``labels``: the submission's labels, the columns of every probability table. ``silence``: the
    label cut from background noise, if the competition has one. ``multi_label``: a clip may hold
    several labels (the model's outputs are independent sigmoids trained by binary cross-entropy,
    not one softmax); its classes are then the labels themselves. ``catch_all``: the label of
    everything else (:attr:`Competition.catch_all_label`), if there is one.
    """

    name: str
    classes: tuple[str, ...]
    class_labels: tuple[str, ...]
    labels: tuple[str, ...]
    silence: str | None = None
    multi_label: bool = False
    catch_all: str | None = None

    @property
    def silence_class(self) -> int | None:
        return self.classes.index(self.silence) if self.silence in self.classes else None

    @property
    def is_labels(self) -> bool:
        """Whether the classes are the submission's labels themselves."""
        return self.classes == self.labels

    def fold(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities over ``classes`` -> over ``labels`` (the classes of one label sum into it)."""
        columns = np.array([self.labels.index(name) for name in self.class_labels])
        out = np.zeros((len(probabilities), len(self.labels)), dtype=np.float64)
        np.add.at(out.T, columns, np.asarray(probabilities, dtype=np.float64).T)
        return out


@dataclass(frozen=True)
class TrainListing:
    """What a competition's training files are, before any audio is read.

    ``clips``: one row per training clip: ``id`` (unique), ``path`` (relative to the extracted
    competition), ``target`` (the finest class the competition names: a training class), ``label``
    (the submission label it is scored as) and ``group`` (clips that must share a fold: a speaker,
    a recording session; the clip's own id where the competition says nothing), plus any columns
    of the competition's own. ``problems``: rows for the problems file (split, path, problem,
    detail, action) about files left out. ``noise``: background recordings (relative paths), if any.
    An optional ``scored`` column (bool) says which clips' labels the CV may be scored on (all when
    absent): Freesound's unverified labels train but are not scored, since every test label is verified.
    """

    clips: pd.DataFrame
    problems: list[dict]
    noise: list[str]


@dataclass(frozen=True)
class NotebookBudget:
    """What Kaggle gives the competition's inference notebook: ``minutes`` on a CPU machine of
    ``cores`` cores (Kaggle's CPU notebooks: 4) for ``hidden_test_clips`` test clips. ``rule rehearse``
    projects the notebook's measured time to it."""

    minutes: float
    hidden_test_clips: int
    cores: int = 4


class Competition(ABC):
    """One Kaggle audio classification competition. Subclasses set the attributes and the methods."""

    #: Kaggle's name for it: https://www.kaggle.com/competitions/<slug>.
    slug: str
    title: str
    #: The submission's labels, in the column order of every probability table of the workflow.
    labels: tuple[str, ...]
    #: Training class sets a model can learn (``label_space`` setting): name -> classes. Each class
    #: is a label, or a finer class that :meth:`label_of` folds into one. ``labels`` (the labels
    #: themselves) is every competition's, and the default.
    target_spaces: dict[str, tuple[str, ...]]
    #: The label cut from background noise rather than read from labelled clips (None: there is none).
    silence_label: str | None = None
    #: The label of everything else (``unknown``), if there is one: audio the models do not recognise
    #: lands there, so self-training keeps its fixed confidence bar (:mod:`wavefold.pseudo`).
    catch_all_label: str | None = None
    #: Whether a clip may hold several labels (Freesound 2019). Its tables then hold a clip's labels
    #: joined by :data:`LABEL_SET_SEPARATOR`, the metrics take multi-hot truths (:func:`encode_labels`),
    #: and the models learn each label as a yes/no of its own.
    multi_label: bool = False
    #: Whether Kaggle takes the competition's submissions as an uploaded CSV (``snakemake submit``);
    #: notebook-only competitions (code competitions) do not.
    submits_by_api: bool = True
    #: The inference notebook's budget (a code competition's rules; otherwise Kaggle's 9-h notebook limit).
    notebook_budget: NotebookBudget
    #: The submission's prediction columns, as the workflow and the notebook write them
    #: (:func:`wavefold.kernel.portable.submission.submission_rows`): ``top`` — the k most probable labels,
    #: space-separated, in ``column`` — or ``scores``, a column per label.
    submission_format: dict = {"kind": "top", "k": 1, "column": "label"}
    #: The files of the Kaggle download ("Download all" zip) the workflow needs.
    download_files: tuple[str, ...]
    #: The test clips' id column in the sample submission and every test table.
    id_column: str = "fname"
    #: The folder under the extracted competition that holds the test clips.
    test_folder: str
    #: The audio policy (:class:`wavefold.audio.AudioPolicy`'s fields) the competition's clips are
    #: cached under unless the config's ``audio`` section says otherwise: its clip-length policy.
    audio_defaults: dict = {"sample_rate": 16000, "clip_seconds": 1.0, "short": "pad", "long": "trim",
                            "window_hop_seconds": None, "other_rates": "resample", "multichannel": "downmix"}  # fmt: skip
    #: The module (under this package) of the demo generator: a function ``generate(out_dir, size,
    #: seed, workers, shift) -> dict`` that writes the demo's download zip (``<slug>.zip``) and the
    #: hidden ``solution.csv`` into ``out_dir``. Kept apart so that only the demo step runs it.
    demo_module: str

    def label_of(self, target: str) -> str:
        """The submission label a training class is scored as (the identity unless overridden)."""
        return target

    def labels_of(self, targets) -> list[str]:
        return [self.label_of(str(name)) for name in targets]

    def label_space(self, name: str) -> LabelSpace:
        """One of :attr:`target_spaces` (the ``label_space`` setting), with its classes' labels."""
        if name not in self.target_spaces:
            raise ValueError(f"label_space: {name!r} is not one of {self.slug}'s ({', '.join(self.target_spaces)})")
        classes = tuple(self.target_spaces[name])
        if self.multi_label and classes != tuple(self.labels):
            raise ValueError(f"label_space: {name!r}: a multi-label competition's models learn its labels themselves")
        return LabelSpace(name, classes, tuple(self.labels_of(classes)), tuple(self.labels), self.silence_label,
                          self.multi_label, self.catch_all_label)  # fmt: skip

    def label_space_of(self, classes) -> LabelSpace:
        """The label space whose classes are ``classes`` (as a saved model lists them)."""
        for name, members in self.target_spaces.items():
            if tuple(members) == tuple(classes):
                return self.label_space(name)
        raise ValueError(f"a model's classes {list(classes)[:5]}... are none of {self.slug}'s label spaces: it "
                         "was trained for another competition")  # fmt: skip

    # ------------------------------------------------------------------ files
    @abstractmethod
    def extract(self, download_dir: Path, staging: Path) -> None:
        """Unpack the downloaded files into ``staging`` (the layout is checked afterwards)."""

    @abstractmethod
    def check_layout(self, root: Path) -> list[str]:
        """What is missing from an extracted competition at ``root`` (empty when nothing is)."""

    @abstractmethod
    def list_train(self, root: Path, warn) -> TrainListing:
        """The training clips, their labels and groups, and the background recordings; ``warn(message)``
        reports what the log should say (a missing optional file)."""

    def list_test(self, root: Path) -> tuple[list[Path], list[dict]]:
        """The test audio files, sorted, and problems rows for files left out or oddly named."""
        folder = root / self.test_folder
        paths, problems = [], []
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() == ".wav":
                paths.append(path)
                if not self.test_name_ok(path.name):
                    relative = str(path.relative_to(root))
                    problems.append(problem_row("test", relative, "name", f"not {self.test_name_pattern}", "kept"))
            else:
                problems.append(problem_row("test", str(path.relative_to(root)), "not_audio", "not a .wav file",
                                            "skipped"))  # fmt: skip
        return paths, problems

    test_name_pattern: str = "<name>.wav"

    def test_name_ok(self, name: str) -> bool:
        return True

    # ------------------------------------------------------------------ submission
    def submission_table(self, fnames, probabilities: np.ndarray) -> pd.DataFrame:
        """The submission's rows from test probabilities (rows: ``fnames``, columns: :attr:`labels`),
        by the notebook's own code: a code competition's notebook writes the same file."""
        format_ = {**self.submission_format, "id_column": self.id_column}
        return pd.DataFrame(submission_rows(list(fnames), probabilities, self.labels, format_))

    @abstractmethod
    def submission_problems(self, submission: pd.DataFrame) -> list[str]:
        """What makes the submission's prediction column(s) invalid (the rows are checked elsewhere)."""

    @abstractmethod
    def predicted_labels(self, submission: pd.DataFrame) -> pd.Series:
        """The top label of every row of a submission (for label mixes)."""

    def candidate_column(self, fnames, probabilities: np.ndarray) -> pd.Series:
        """One column that :meth:`score_rows` can score as a submission's ``label`` column: how the
        blend records each candidate's test predictions for the local score. The submission's own
        label column unless the submission holds probabilities (then: every label, best first)."""
        return self.submission_table(fnames, probabilities)["label"]

    def truth(self, values) -> np.ndarray:
        """True labels as the metrics take them (:func:`encode_labels`) from a ``label`` column."""
        return encode_labels(values, self.labels, self.multi_label)

    #: The competition's metric, as the blend's and the reports' column name.
    metric_name: str = "accuracy"

    def metric_rows(self, probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The metric's per-row values of probabilities (rows: clips, columns: :attr:`labels`) whose
        true labels are ``y`` (:meth:`truth`): what :meth:`score_rows` gives their submission; their
        mean is the metric on these rows. Accuracy's unless overridden."""
        return (np.asarray(probabilities).argmax(1) == np.asarray(y)).astype(float)

    @abstractmethod
    def score_rows(self, submission: pd.DataFrame, solution: pd.DataFrame) -> pd.Series:
        """The metric's per-clip values of ``submission`` on ``solution``'s rows, in its order (the
        metric is their mean: accuracy's 0/1, MAP@3's reciprocal rank)."""


def get(slug: str) -> Competition:
    """The competition called ``slug`` (its Kaggle name)."""
    if slug not in MODULES:
        raise UnknownCompetition(
            f"competition: {slug!r} is not one wavefold knows ({', '.join(MODULES)}). README, "
            f"'Add a competition', says how to add one."
        )
    return importlib.import_module(f"{__name__}.{MODULES[slug]}").COMPETITION


def module_file(slug: str) -> Path:
    """The file of a competition's module (the code the workflow's steps run for it)."""
    return Path(__file__).with_name(f"{MODULES[slug]}.py")


def demo_module_file(slug: str) -> Path:
    return Path(__file__).with_name(f"{get(slug).demo_module}.py")


def generate_demo(slug: str, out_dir: Path, size: str, seed: int, workers: int = 1, shift: str = "mild") -> dict:
    """Write the competition's demo (its download zip and hidden solution) into ``out_dir``."""
    module = importlib.import_module(f"{__name__}.{get(slug).demo_module}")
    return module.generate(out_dir, size, seed, workers, shift=shift)
