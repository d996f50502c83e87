"""Freesound Audio Tagging 2019 (Kaggle; DCASE 2019 task 2): multi-label tagging of 80 sound labels.

A clip may hold several labels. The download is ``train_curated.zip`` (~5k clips labelled by people:
folder ``train_curated/``), ``train_noisy.zip`` (~20k clips labelled from Flickr video metadata, many
labels wrong or missing: ``train_noisy/``), ``test.zip`` (``test/``; 44.1 kHz, 16-bit mono WAV of 0.3
to 30 s, named ``<8 hex digits>.wav``), ``train_curated.csv`` and ``train_noisy.csv`` (``fname,labels``:
a clip's labels joined by commas) and ``sample_submission.csv`` (``fname`` and one column per label).
The submission gives every test clip a score per label; it is scored by label-weighted label-ranking
average precision (lwlrap): for each true label of each clip, the share of the labels ranked at or
above it that are true, averaged over all true (clip, label) pairs, so every label counts by how
often it occurs.

The curated clips train and score the CV; the noisy ones only train (``scored`` False), as the test
labels were all curated. There are no recording groups: each clip is its own.

Kaggle took this competition's submissions from notebooks only (a code competition), so ``snakemake
submit`` refuses it: the submission file is made and checked here, and uploaded from a notebook.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import lwlrap_rows
from . import LABEL_SET_SEPARATOR, NotebookBudget, TrainListing, multi_hot, problem_row, split_label_sets
from .freesound_audio_tagging import FreesoundAudioTagging, layout_problems, unzip_folder

#: The 80 labels, in the column order of the sample submission and every probability table.
LABELS = (
    "Accelerating_and_revving_and_vroom", "Accordion", "Acoustic_guitar", "Applause", "Bark", "Bass_drum",
    "Bass_guitar", "Bathtub_(filling_or_washing)", "Bicycle_bell", "Burping_and_eructation", "Bus", "Buzz",
    "Car_passing_by", "Cheering", "Chewing_and_mastication", "Child_speech_and_kid_speaking", "Chink_and_clink",
    "Chirp_and_tweet", "Church_bell", "Clapping", "Computer_keyboard", "Crackle", "Cricket", "Crowd",
    "Cupboard_open_or_close", "Cutlery_and_silverware", "Dishes_and_pots_and_pans", "Drawer_open_or_close", "Drip",
    "Electric_guitar", "Fart", "Female_singing", "Female_speech_and_woman_speaking", "Fill_(with_liquid)",
    "Finger_snapping", "Frying_(food)", "Gasp", "Glockenspiel", "Gong", "Gurgling", "Harmonica", "Hi-hat", "Hiss",
    "Keys_jangling", "Knock", "Male_singing", "Male_speech_and_man_speaking", "Marimba_and_xylophone",
    "Mechanical_fan", "Meow", "Microwave_oven", "Motorcycle", "Printer", "Purr", "Race_car_and_auto_racing",
    "Raindrop", "Run", "Scissors", "Screaming", "Shatter", "Sigh", "Sink_(filling_or_washing)", "Skateboard", "Slam",
    "Sneeze", "Squeak", "Stream", "Strum", "Tap", "Tick-tock", "Toilet_flush", "Traffic_noise_and_roadway_noise",
    "Trickle_and_dribble", "Walk_and_footsteps", "Water_tap_and_faucet", "Waves_and_surf", "Whispering", "Writing",
    "Yell", "Zipper_(clothing)",
)  # fmt: skip

DOWNLOAD_FILES = ("train_curated.zip", "train_noisy.zip", "test.zip", "train_curated.csv", "train_noisy.csv",
                  "sample_submission.csv")  # fmt: skip
#: (folder, its labels file, whether its labels are trusted: scored by the CV)
TRAIN_PARTS = (("train_curated", "train_curated.csv", True), ("train_noisy", "train_noisy.csv", False))
TEST_FOLDER = "test"


def ranked_labels(probabilities: np.ndarray) -> list[str]:
    """Every label of each row, most probable first, space-separated: all that lwlrap reads of a row."""
    order = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")
    return [" ".join(np.array(LABELS)[row]) for row in order]


class FreesoundAudioTagging2019(FreesoundAudioTagging):
    """Freesound 2018's clips, names and audio policy (2-s windows 1 s apart at 16 kHz); its own files,
    label sets, metric and submission."""

    slug = "freesound-audio-tagging-2019"
    title = "Freesound Audio Tagging 2019"
    labels = LABELS
    target_spaces = {"labels": LABELS}
    multi_label = True
    submits_by_api = False
    download_files = DOWNLOAD_FILES
    test_folder = TEST_FOLDER
    notebook_budget = NotebookBudget(minutes=240, hidden_test_clips=4481)
    submission_format = {"kind": "scores"}
    demo_module = "freesound_audio_tagging_2019_demo"
    metric_name = "lwlrap"

    # ------------------------------------------------------------------ files
    def extract(self, download_dir: Path, staging: Path) -> None:
        for folder, _, _ in TRAIN_PARTS:
            unzip_folder(download_dir / f"{folder}.zip", staging, folder)
        unzip_folder(download_dir / "test.zip", staging, TEST_FOLDER)
        for name in ("train_curated.csv", "train_noisy.csv", "sample_submission.csv"):
            shutil.copyfile(download_dir / name, staging / name)

    def check_layout(self, root: Path) -> list[str]:
        expected = {"train_curated.csv": ["fname", "labels"], "train_noisy.csv": ["fname", "labels"],
                    "sample_submission.csv": ["fname", *LABELS]}  # fmt: skip
        return layout_problems(root, (*(part[0] for part in TRAIN_PARTS), TEST_FOLDER), expected)

    def list_train(self, root: Path, warn=print) -> TrainListing:
        """The curated and the noisy clips with their label sets (``label``: labels joined by commas,
        in the competition's order); the noisy ones train but are not scored."""
        parts, problems, seen = [], [], set()
        for folder, csv_name, trusted in TRAIN_PARTS:
            table = pd.read_csv(root / csv_name, dtype={"fname": str, "labels": str}).fillna({"labels": ""})
            present = {p.name for p in (root / folder).iterdir()}
            keep = []
            for row in table.itertuples(index=False):
                path = f"{folder}/{row.fname}"
                names = split_label_sets([row.labels])[0]
                unknown = [name for name in names if name not in LABELS]
                if not names or unknown:
                    detail = f"labels {unknown[:3]} are not among the 80" if unknown else "no label"
                    problems.append(problem_row("train", path, "unknown_label", detail, "skipped"))
                elif row.fname in seen:
                    problems.append(problem_row("train", path, "listed_twice", "its name is listed already",
                                                "first row kept"))  # fmt: skip
                elif row.fname not in present:
                    problems.append(problem_row("train", path, "missing", f"listed in {csv_name}, no file", "skipped"))
                else:
                    seen.add(row.fname)
                    ordered = LABEL_SET_SEPARATOR.join(name for name in LABELS if name in names)
                    keep.append({"id": row.fname, "path": path, "target": ordered, "label": ordered,
                                 "group": row.fname, "curated": int(trusted), "scored": trusted})  # fmt: skip
            listed = set(table["fname"])
            for name in sorted(present - listed):
                problems.append(problem_row("train", f"{folder}/{name}", "unlisted", f"not in {csv_name} (no label)",
                                            "skipped"))  # fmt: skip
            parts.append(pd.DataFrame(keep, columns=["id", "path", "target", "label", "group", "curated", "scored"]))
        clips = pd.concat(parts, ignore_index=True)
        curated = int(clips["curated"].sum())
        warn(f"{curated} curated clips (scored by the CV) and {len(clips) - curated} noisy ones (training only); "
             f"{float(clips['label'].str.count(LABEL_SET_SEPARATOR).mean() + 1):.2f} labels per clip")  # fmt: skip
        return TrainListing(clips, problems, [])

    # ------------------------------------------------------------------ submission

    def submission_problems(self, submission: pd.DataFrame) -> list[str]:
        missing = [label for label in LABELS if label not in submission.columns]
        if missing:
            return [f"no column for the labels {missing[:3]} (one column per label, as sample_submission.csv)"]
        if list(submission.columns) != ["fname", *LABELS]:
            return ["the columns are not fname and the 80 labels in sample_submission.csv's order"]
        values = submission[list(LABELS)].apply(pd.to_numeric, errors="coerce").to_numpy()
        problems = []
        bad = int((~np.isfinite(values)).any(1).sum())
        if bad:
            problems.append(f"{bad} rows have scores that are not numbers")
        return problems

    def predicted_labels(self, submission: pd.DataFrame) -> pd.Series:
        if "label" in submission.columns:  # a candidate's ranking (candidate_column)
            return submission["label"].fillna("").astype(str).str.split().str[0]
        return pd.Series(np.array(LABELS)[submission[list(LABELS)].to_numpy().argmax(1)], index=submission.index)

    def candidate_column(self, fnames, probabilities: np.ndarray) -> pd.Series:
        return pd.Series(ranked_labels(probabilities))

    def score_rows(self, submission: pd.DataFrame, solution: pd.DataFrame) -> pd.Series:
        """lwlrap's per-clip shares (:func:`lwlrap_rows`) of a submission of scores per label, or of a
        ``label`` column ranking the labels (:meth:`candidate_column`)."""
        merged = solution[["fname"]].merge(submission, on="fname", how="left")
        if "label" in submission.columns and LABELS[0] not in submission.columns:
            ranking = merged["label"].fillna("").astype(str).str.split()
            scores = np.zeros((len(merged), len(LABELS)))
            index = {name: i for i, name in enumerate(LABELS)}
            for row, names in enumerate(ranking):
                for place, name in enumerate(names):
                    scores[row, index[name]] = len(LABELS) - place
        else:
            scores = merged[list(LABELS)].fillna(0.0).to_numpy(dtype=np.float64)
        return pd.Series(lwlrap_rows(scores, multi_hot(solution["label"], LABELS)))

    def metric_rows(self, probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
        return lwlrap_rows(probabilities, y)


COMPETITION = FreesoundAudioTagging2019()
