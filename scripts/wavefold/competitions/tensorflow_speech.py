"""The TensorFlow Speech Recognition Challenge (Kaggle, 2017-18): 1-s, 16 kHz clips, 12 labels.

Its download is ``train.7z``, ``test.7z`` and ``sample_submission.7z``. ``train/audio/<word>/`` holds
the clips of 30 words, named ``<speaker>_nohash_<n>.wav``; ``train/audio/_background_noise_/`` six
long recordings that ``silence`` is cut from (the competition has no labelled silence). Ten words
are scored as themselves, the other twenty as ``unknown``. The submission is ``fname,label``,
scored by accuracy.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd

from .. import archives
from . import Competition, NotebookBudget, TrainListing, problem_row

#: The ten command words that are scored as themselves.
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

#: The twenty other words of the training set; all of them are scored as ``unknown``.
AUXILIARY_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
)  # fmt: skip

#: The 30 word folders of ``train/audio``.
WORDS = COMMANDS + AUXILIARY_WORDS

#: The 12 labels of the submission, in the column order every probability table uses.
LABELS = COMMANDS + ("silence", "unknown")

#: The folder of background noise recordings inside ``train/audio``.
NOISE_FOLDER = "_background_noise_"

#: The six noise recordings the real competition ships.
NOISE_FILES = (
    "doing_the_dishes.wav",
    "dude_miaowing.wav",
    "exercise_bike.wav",
    "pink_noise.wav",
    "running_tap.wav",
    "white_noise.wav",
)

ARCHIVES = ("train.7z", "test.7z", "sample_submission.7z")

TRAIN_CLIP_NAME = re.compile(r"^(?P<speaker>[0-9a-f]{8})_nohash_(?P<repeat>\d+)\.wav$")
TEST_CLIP_NAME = re.compile(r"^clip_[0-9a-f]{9}\.wav$")

# From the dataset's README: a clip's list membership is a hash of its speaker, so that one speaker's
# clips never straddle the train/validation/test lists.
_MAX_CLIPS_PER_CLASS = 2**27 - 1


def label_of(word: str) -> str:
    """The submission label of a training word (``marvin`` -> ``unknown``)."""
    return word if word in COMMANDS else "unknown"


def speaker_of(clip_name: str) -> str:
    """The speaker id of a clip name: the part before ``_nohash_``."""
    return re.sub(r"_nohash_.*$", "", clip_name)


def official_split(clip_name: str, validation_percent: float = 10.0, testing_percent: float = 10.0) -> str:
    """``training``, ``validation`` or ``testing``, exactly as the dataset's ``which_set`` assigns lists."""
    speaker = speaker_of(clip_name)
    digest = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percent = (digest % (_MAX_CLIPS_PER_CLASS + 1)) * (100.0 / _MAX_CLIPS_PER_CLASS)
    if percent < validation_percent:
        return "validation"
    if percent < validation_percent + testing_percent:
        return "testing"
    return "training"


def read_lists(train_dir: Path, warn) -> dict[str, str]:
    """Clip id -> ``validation``/``testing`` from the shipped list files (absent: ``training``)."""
    membership = {}
    for name in ("validation", "testing"):
        list_file = train_dir / f"{name}_list.txt"
        if list_file.is_file():
            for line in list_file.read_text().split():
                membership[line.strip()] = name
        else:
            warn(f"{list_file} is missing: every clip is taken as 'training' in the list column")
    return membership


class SpeechChallenge(Competition):
    slug = "tensorflow-speech-recognition-challenge"
    title = "TensorFlow Speech Recognition Challenge"
    labels = LABELS
    target_spaces = {"labels": LABELS, "words31": WORDS + ("silence",)}
    silence_label = "silence"
    catch_all_label = "unknown"
    download_files = ARCHIVES
    test_folder = "test/audio"
    notebook_budget = NotebookBudget(minutes=540, hidden_test_clips=158538)
    test_name_pattern = "clip_<9 hex>.wav"
    demo_module = "tensorflow_speech_demo"

    def label_of(self, target: str) -> str:
        return target if target in LABELS else label_of(target)

    def test_name_ok(self, name: str) -> bool:
        return TEST_CLIP_NAME.match(name) is not None

    # ------------------------------------------------------------------ files
    def extract(self, download_dir: Path, staging: Path) -> None:
        for name in ARCHIVES:
            archives.extract_7z(download_dir / name, staging)

    def check_layout(self, root: Path) -> list[str]:
        problems = []
        audio = root / "train" / "audio"
        if not audio.is_dir():
            problems.append("train/audio/ (one folder of .wav clips per word)")
        else:
            missing_words = [w for w in WORDS if not (audio / w).is_dir()]
            if missing_words:
                problems.append(f"train/audio/<word>/ for {missing_words}")
            if not any((audio / NOISE_FOLDER).glob("*.wav")):
                problems.append(f"train/audio/{NOISE_FOLDER}/*.wav (background noise)")
        test_audio = root / self.test_folder
        if not test_audio.is_dir() or not any(TEST_CLIP_NAME.match(p.name) for p in test_audio.iterdir()):
            problems.append("test/audio/clip_<9 hex digits>.wav")
        sample = root / "sample_submission.csv"
        if not sample.is_file():
            problems.append("sample_submission.csv")
        elif list(pd.read_csv(sample, nrows=1).columns) != ["fname", "label"]:
            problems.append("sample_submission.csv with the columns fname,label")
        return problems

    def list_train(self, root: Path, warn=print) -> TrainListing:
        """Word folders give the target, ``<speaker>_nohash_`` names the group; the list files the
        dataset's own split (kept as the ``list`` column)."""
        audio = root / "train" / "audio"
        problems, rows = [], []
        membership = read_lists(root / "train", warn)
        for folder in sorted(p for p in audio.iterdir() if p.is_dir()):
            if folder.name == NOISE_FOLDER:
                continue
            if folder.name not in WORDS:
                problems.append(problem_row("train", str(folder.relative_to(root)), "unexpected_folder",
                                         "not one of the 30 words", "skipped"))  # fmt: skip
                continue
            for path in sorted(folder.iterdir()):
                relative = str(path.relative_to(root))
                if path.suffix.lower() != ".wav":
                    problems.append(problem_row("train", relative, "not_audio", "not a .wav file", "skipped"))
                    continue
                match = TRAIN_CLIP_NAME.match(path.name)
                if match is None:
                    problems.append(problem_row("train", relative, "name", "not <speaker>_nohash_<n>.wav", "kept"))
                clip_id = f"{folder.name}/{path.name}"
                speaker = speaker_of(path.name) if match is None else match["speaker"]
                rows.append({
                    "id": clip_id, "path": relative, "target": folder.name, "label": label_of(folder.name),
                    "group": speaker, "speaker": speaker, "repeat": int(match["repeat"]) if match else 0,
                    "list": membership.get(clip_id, "training"),
                })  # fmt: skip
        columns = ["id", "path", "target", "label", "group", "speaker", "repeat", "list"]
        noise = [str(p.relative_to(root)) for p in sorted((audio / NOISE_FOLDER).glob("*.wav"))]
        return TrainListing(pd.DataFrame(rows, columns=columns), problems, noise)

    # ------------------------------------------------------------------ submission

    def submission_problems(self, submission: pd.DataFrame) -> list[str]:
        invalid = submission.loc[~submission["label"].isin(LABELS), "label"]
        if len(invalid):
            return [f"{len(invalid)} labels are not one of {' '.join(LABELS)}, "
                    f"e.g. {sorted(set(invalid.astype(str)))[:3]}"]  # fmt: skip
        return []

    def predicted_labels(self, submission: pd.DataFrame) -> pd.Series:
        return submission["label"]

    def score_rows(self, submission: pd.DataFrame, solution: pd.DataFrame) -> pd.Series:
        """Accuracy's per-clip values: 1 where the label is right."""
        predicted = solution[["fname"]].merge(submission, on="fname", how="left")["label"]
        return (predicted.to_numpy() == solution["label"].to_numpy()).astype(float)


COMPETITION = SpeechChallenge()
