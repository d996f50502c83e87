"""The Freesound General-Purpose Audio Tagging Challenge (Kaggle, 2018; DCASE 2018 task 2).

41 sound-event labels from Google's AudioSet ontology, one per clip. Its download is
``audio_train.zip`` and ``audio_test.zip`` (folders ``audio_train/`` and ``audio_test/`` of 44.1 kHz,
16-bit mono WAV clips from 0.3 to 30 s, named ``<8 hex digits>.wav``), ``train.csv``
(``fname,label,manually_verified``: about 40% of the labels were not checked by a person, and
some of those are wrong) and ``sample_submission.csv``. There are no speakers: each clip is its
own group. The submission is ``fname`` and up to three space-separated labels, best first, scored
by mean average precision at 3 (MAP@3: 1, 1/2 or 1/3 where the true label is first, second or
third, else 0).

Clips are of any length, so they are cached as overlapping 2-s windows (audio policy ``long:
windows``): training draws a random one of a clip's windows each time it is drawn, prediction
averages over all of them.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import Competition, NotebookBudget, TrainListing, problem_row

#: The 41 labels, in the column order of every probability table (Kaggle's spelling).
LABELS = (
    "Acoustic_guitar", "Applause", "Bark", "Bass_drum", "Burping_or_eructation", "Bus", "Cello", "Chime",
    "Clarinet", "Computer_keyboard", "Cough", "Cowbell", "Double_bass", "Drawer_open_or_close",
    "Electric_piano", "Fart", "Finger_snapping", "Fireworks", "Flute", "Glockenspiel", "Gong",
    "Gunshot_or_gunfire", "Harmonica", "Hi-hat", "Keys_jangling", "Knock", "Laughter", "Meow",
    "Microwave_oven", "Oboe", "Saxophone", "Scissors", "Shatter", "Snare_drum", "Squeak", "Tambourine",
    "Tearing", "Telephone", "Trumpet", "Violin_or_fiddle", "Writing",
)  # fmt: skip

DOWNLOAD_FILES = ("audio_train.zip", "audio_test.zip", "train.csv", "sample_submission.csv")
TRAIN_FOLDER, TEST_FOLDER = "audio_train", "audio_test"
CLIP_NAME = re.compile(r"^[0-9a-f]{8}\.wav$")
#: How many labels a submission row may give, best first (MAP@3).
TOP_K = 3


def unzip_folder(archive: Path, staging: Path, folder: str) -> None:
    """Unpack ``archive`` so that its clips land in ``staging/folder`` (whether or not the zip has the
    folder inside it, as Kaggle's do)."""
    with zipfile.ZipFile(archive) as zipped:
        names = [n for n in zipped.namelist() if not n.endswith("/")]
        nested = all(n.startswith(f"{folder}/") for n in names)
        target = staging if nested else staging / folder
        target.mkdir(parents=True, exist_ok=True)
        zipped.extractall(target)


def layout_problems(root: Path, folders, expected: dict[str, list[str]], leading: bool = False) -> list[str]:
    """What is missing from a Freesound-like layout: ``folders`` of ``<8 hex digits>.wav`` clips, and
    CSV files with their ``expected`` columns (``leading``: as the first columns, more may follow)."""
    problems = []
    for folder in folders:
        if not (root / folder).is_dir() or not any((root / folder).glob("*.wav")):
            problems.append(f"{folder}/<8 hex digits>.wav")
    for name, columns in expected.items():
        if not (root / name).is_file():
            problems.append(name)
            continue
        found = list(pd.read_csv(root / name, nrows=1).columns)
        if (found[: len(columns)] if leading else found) != columns:
            shown = ",".join(columns) if len(columns) < 5 else f"{columns[0]} and the {len(columns) - 1} labels, in order"
            problems.append(f"{name} with the columns {shown}")
    return problems


def top_labels(probabilities: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """(clips, k) label numbers, the most probable first (ties: the lower number first)."""
    return np.argsort(-np.asarray(probabilities), axis=1, kind="stable")[:, :k]


def average_precision_at_3(predicted: list[list[str]], truth: list[str]) -> np.ndarray:
    """Each clip's MAP@3 term: 1/rank of the true label among the first three predicted, else 0.
    A label given twice counts at its first place only."""
    values = np.zeros(len(truth))
    for i, (labels, true) in enumerate(zip(predicted, truth)):
        for rank, label in enumerate(labels[:TOP_K], start=1):
            if label == true:
                values[i] = 1.0 / rank
                break
    return values


def map3_of_probabilities(probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's MAP@3 term, from probabilities and true label numbers: the metric on the OOF rows."""
    top = top_labels(probabilities)
    hit = top == np.asarray(y)[:, None]
    return (hit / np.arange(1, TOP_K + 1)).sum(axis=1)


class FreesoundAudioTagging(Competition):
    slug = "freesound-audio-tagging"
    title = "Freesound General-Purpose Audio Tagging Challenge"
    labels = LABELS
    target_spaces = {"labels": LABELS}
    silence_label = None
    download_files = DOWNLOAD_FILES
    test_folder = TEST_FOLDER
    notebook_budget = NotebookBudget(minutes=540, hidden_test_clips=9400)
    submission_format = {"kind": "top", "k": TOP_K, "column": "label"}
    test_name_pattern = "<8 hex digits>.wav"
    demo_module = "freesound_audio_tagging_demo"
    metric_name = "map3"
    # Variable-length clips: cached whole, as 2-s windows 1 s apart (random crops in training, the
    # mean over all windows at prediction). 16 kHz keeps the cache a third of the 44.1 kHz audio's size.
    audio_defaults = {**Competition.audio_defaults, "clip_seconds": 2.0, "long": "windows", "window_hop_seconds": 1.0}

    def test_name_ok(self, name: str) -> bool:
        return CLIP_NAME.match(name) is not None

    # ------------------------------------------------------------------ files
    def extract(self, download_dir: Path, staging: Path) -> None:
        unzip_folder(download_dir / "audio_train.zip", staging, TRAIN_FOLDER)
        unzip_folder(download_dir / "audio_test.zip", staging, TEST_FOLDER)
        for name in ("train.csv", "sample_submission.csv"):
            shutil.copyfile(download_dir / name, staging / name)

    def check_layout(self, root: Path) -> list[str]:
        expected = {"train.csv": ["fname", "label", "manually_verified"], "sample_submission.csv": ["fname", "label"]}
        return layout_problems(root, (TRAIN_FOLDER, TEST_FOLDER), expected, leading=True)

    def list_train(self, root: Path, warn=print) -> TrainListing:
        """``train.csv`` gives each clip's label and whether a person verified it; every clip is its own
        group (the competition names no recording sessions or uploaders)."""
        table = pd.read_csv(root / "train.csv", dtype={"fname": str, "label": str})
        listed = set(table["fname"])
        problems = []
        known = table["label"].isin(LABELS)
        for row in table[~known].itertuples(index=False):
            problems.append(problem_row("train", f"{TRAIN_FOLDER}/{row.fname}", "unknown_label",
                                        f"{row.label!r} is not one of the 41 labels", "skipped"))  # fmt: skip
        repeated = table["fname"].duplicated(keep="first")
        for fname in table.loc[repeated & known, "fname"]:
            problems.append(problem_row("train", f"{TRAIN_FOLDER}/{fname}", "listed_twice",
                                        "train.csv lists it more than once", "first row kept"))  # fmt: skip
        table = table[known & ~repeated]
        present = {p.name for p in (root / TRAIN_FOLDER).iterdir()}
        missing = ~table["fname"].isin(present)
        for fname in table.loc[missing, "fname"]:
            problems.append(problem_row("train", f"{TRAIN_FOLDER}/{fname}", "missing", "listed in train.csv, no file",
                                        "skipped"))  # fmt: skip
        table = table[~missing]
        for name in sorted(present - listed):
            problems.append(problem_row("train", f"{TRAIN_FOLDER}/{name}", "unlisted", "not in train.csv (no label)",
                                        "skipped"))  # fmt: skip
        verified = table["manually_verified"].astype(int)
        warn(f"train.csv: {int((verified == 0).sum())} of {len(table)} labels were not verified by a person")
        clips = pd.DataFrame({
            "id": table["fname"], "path": TRAIN_FOLDER + "/" + table["fname"], "target": table["label"],
            "label": table["label"], "group": table["fname"], "manually_verified": verified,
            # The test labels were all verified: the CV is scored on the verified clips only, so that
            # it estimates the test score (the unverified ones still train).
            "scored": verified == 1,
        }).reset_index(drop=True)  # fmt: skip
        return TrainListing(clips, problems, [])

    # ------------------------------------------------------------------ submission

    def submission_problems(self, submission: pd.DataFrame) -> list[str]:
        split = submission["label"].fillna("").astype(str).str.split()
        problems = []
        invalid = sorted({label for labels in split for label in labels if label not in LABELS})
        if invalid:
            problems.append(f"labels that are not one of the 41: {invalid[:3]}")
        empty, long_rows = int((split.str.len() == 0).sum()), int((split.str.len() > TOP_K).sum())
        if empty:
            problems.append(f"{empty} rows give no label")
        if long_rows:
            problems.append(f"{long_rows} rows give more than {TOP_K} labels (MAP@{TOP_K} reads the first {TOP_K})")
        return problems

    def predicted_labels(self, submission: pd.DataFrame) -> pd.Series:
        return submission["label"].fillna("").astype(str).str.split().str[0]

    def score_rows(self, submission: pd.DataFrame, solution: pd.DataFrame) -> pd.Series:
        """MAP@3's per-clip terms: 1/rank of the true label among the first three, else 0."""
        predicted = solution[["fname"]].merge(submission, on="fname", how="left")["label"].fillna("")
        return average_precision_at_3(predicted.astype(str).str.split().tolist(), solution["label"].tolist())

    def metric_rows(self, probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
        return map3_of_probabilities(probabilities, y)


COMPETITION = FreesoundAudioTagging()
