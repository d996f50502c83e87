"""The demo of Freesound Audio Tagging 2019: synthetic multi-label sound clips in the real download's
files and formats.

``<slug>.zip`` holds ``train_curated.zip``, ``train_noisy.zip``, ``test.zip`` (44.1 kHz, 16-bit mono WAV
clips named ``<8 hex digits>.wav``), ``train_curated.csv`` and ``train_noisy.csv`` (``fname,labels``,
labels joined by commas) and ``sample_submission.csv`` (``fname`` and a column per label); the hidden
``solution.csv`` (``fname,label,Usage``, the label set joined by commas) is written beside it.

Each of the 80 labels (the tiny demo's clips: 40 of them) is one kind of synthetic event (Freesound 2018's demo makes them: tones,
chirps, click trains, noise bands, harmonic stacks, words spoken by espeak-ng). A clip holds one
label's events, or, as about a third of the real curated clips, two or three labels' overlapping.
Curated and test labels are right; a noisy clip's labels are wrong (another label) or missing one
of two about a third of the time, as Flickr's tags are. ``shift`` as in Freesound 2018's demo.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import archives
from . import LABEL_SET_SEPARATOR
from .freesound_audio_tagging_2019 import DOWNLOAD_FILES, LABELS, TEST_FOLDER, FreesoundAudioTagging2019
from .freesound_audio_tagging_demo import (SHIFTS, TRAIN_SNR, ClipJob, check_size_and_shift, clip_seconds,
                                           label_events, render_all)  # fmt: skip
from .tensorflow_speech_demo import espeak_installation, require_espeak

log = logging.getLogger(__name__)

#: The vocal labels: espeak-ng saying a word of their own.
SPOKEN = {
    "Burping_and_eructation": "burp", "Fart": "pfft", "Meow": "meow", "Bark": "woof",
    "Child_speech_and_kid_speaking": "hello", "Female_speech_and_woman_speaking": "good morning",
    "Male_speech_and_man_speaking": "thank you", "Whispering": "psst", "Yell": "hey", "Sneeze": "achoo",
}  # fmt: skip


@dataclass(frozen=True)
class DemoSize:
    labels: int  # how many of the 80 labels the clips hold (the rest never occur; every table has all 80)
    curated_per_label: int  # clips led by each label
    noisy_per_label: int
    test_per_label: int
    max_seconds: float


SIZES = {
    # tiny: half the labels, so that a few epochs on a few hundred clips learn them (the suite's DAG test)
    "tiny": DemoSize(labels=40, curated_per_label=4, noisy_per_label=1, test_per_label=2, max_seconds=4.0),
    "small": DemoSize(labels=80, curated_per_label=10, noisy_per_label=10, test_per_label=4, max_seconds=12.0),
    "default": DemoSize(labels=80, curated_per_label=30, noisy_per_label=60, test_per_label=12, max_seconds=30.0),
}
#: How many labels a clip holds: 1, 2 or 3, with these shares (the curated set's: 1.2 labels a clip).
LABEL_COUNTS, COUNT_SHARES = (1, 2, 3), (0.7, 0.25, 0.05)
NOISY_WRONG_SHARE = 0.35


def label_sets(rng: np.random.Generator, used: np.ndarray, per_label: int) -> list[tuple[int, ...]]:
    """``per_label`` clips led by each label of ``used`` (label numbers), each with 0-2 more of them
    drawn at random, shuffled."""
    first = rng.permutation(np.repeat(used, per_label))
    counts = rng.choice(LABEL_COUNTS, size=len(first), p=COUNT_SHARES)
    sets = []
    for lead, count in zip(first, counts):
        others = rng.choice(used[used != lead], size=count - 1, replace=False)
        sets.append((int(lead), *map(int, others)))
    return sets


def noisy_tags(rng: np.random.Generator, used: np.ndarray, truth: tuple[int, ...]) -> tuple[int, ...]:
    """What a noisy clip is tagged: its labels, or (a third of the time) one replaced by another
    label of ``used``, or one of several left out."""
    if rng.random() >= NOISY_WRONG_SHARE:
        return truth
    if len(truth) > 1 and rng.random() < 0.5:
        return truth[:-1]
    wrong = int(rng.choice(used[used != truth[0]]))
    return (wrong, *(t for t in truth[1:] if t != wrong))


def joined(labels: tuple[int, ...]) -> str:
    return LABEL_SET_SEPARATOR.join(LABELS[i] for i in sorted(set(labels)))


def plan(size: DemoSize, seed: int, shift: str):
    """(clips to render, train_curated.csv, train_noisy.csv, solution.csv)."""
    rng = np.random.default_rng([seed, 2019])
    used = np.sort(rng.choice(len(LABELS), size=size.labels, replace=False))
    curated, noisy, test = (label_sets(rng, used, n) for n in (size.curated_per_label, size.noisy_per_label,
                                                                size.test_per_label))  # fmt: skip
    total = len(curated) + len(noisy) + len(test)
    names = [f"{value:08x}.wav" for value in rng.choice(16**8, total, replace=False)]
    parts = {"train_curated": (sorted(names[: len(curated)]), curated),
             "train_noisy": (sorted(names[len(curated) : len(curated) + len(noisy)]), noisy),
             TEST_FOLDER: (sorted(names[len(curated) + len(noisy) :]), test)}  # fmt: skip
    (test_low, test_high), lowpass = SHIFTS[shift]
    jobs = []
    for folder, (fnames, truths) in parts.items():
        is_test = folder == TEST_FOLDER
        seconds = clip_seconds(rng, len(fnames), size.max_seconds)
        snrs = rng.uniform(*((test_low, test_high) if is_test else TRAIN_SNR), len(fnames))
        seeds = rng.integers(0, 2**31, len(fnames))
        for name, truth, s, d, k in zip(fnames, truths, seconds, snrs, seeds):
            jobs.append(ClipJob(f"{folder}/{name}", LABELS[truth[0]], float(s), float(d), lowpass if is_test else None,
                                int(k), tuple(LABELS[t] for t in truth[1:])))  # fmt: skip
    curated_csv = pd.DataFrame({"fname": parts["train_curated"][0], "labels": [joined(t) for t in curated]})
    tags = [joined(noisy_tags(rng, used, t)) for t in noisy]
    noisy_csv = pd.DataFrame({"fname": parts["train_noisy"][0], "labels": tags})
    usage = np.where(rng.random(len(test)) < 0.19, "Public", "Private")
    solution = pd.DataFrame({"fname": parts[TEST_FOLDER][0], "label": [joined(t) for t in test], "Usage": usage})
    return jobs, curated_csv, noisy_csv, solution


def _zip_flat(folder: Path, archive: Path) -> None:
    """Zip a folder's clips at the archive's root (the extract step accepts either layout)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        for path in sorted(folder.glob("*.wav")):
            zipped.write(path, path.name)


def generate(out_dir: Path, size_name: str, seed: int, workers: int = 1, shift: str = "mild") -> dict:
    """Write ``freesound-audio-tagging-2019.zip`` and ``solution.csv`` into ``out_dir``."""
    require_espeak()
    check_size_and_shift(size_name, SIZES, shift)
    slug = FreesoundAudioTagging2019.slug
    events = label_events(seed, LABELS, SPOKEN)
    jobs, curated, noisy, solution = plan(SIZES[size_name], seed, shift)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("demo %s, shift %s (seed %d): %d clips to synthesise with %d workers", size_name, shift, seed,
             len(jobs), workers)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".staging-") as tmp:
        staging = Path(tmp)
        render_all(jobs, events, staging, workers)
        files = staging / "files"
        files.mkdir()
        for folder in ("train_curated", "train_noisy", TEST_FOLDER):
            _zip_flat(staging / folder, files / f"{folder}.zip")
        curated.to_csv(files / "train_curated.csv", index=False)
        noisy.to_csv(files / "train_noisy.csv", index=False)
        sample = pd.DataFrame(0.0, index=range(len(solution)), columns=list(LABELS))
        sample.insert(0, "fname", solution["fname"])
        sample.to_csv(files / "sample_submission.csv", index=False)
        archives.pack_competition_zip([files / name for name in DOWNLOAD_FILES], out_dir / f"{slug}.zip")
    solution.to_csv(out_dir / "solution.csv", index=False)
    counts = {
        "curated_clips": len(curated),
        "noisy_clips": len(noisy),
        "test_clips": len(solution),
        "labels_per_clip": float(solution["label"].str.count(LABEL_SET_SEPARATOR).mean() + 1),
        "shift": shift,
        "seconds": float(sum(job.seconds for job in jobs)),
        "zip_bytes": os.path.getsize(out_dir / f"{slug}.zip"),
        "espeak_ng": espeak_installation()[0],  # the vocal events' words, spoken by this version
    }
    log.info("demo written: %s", counts)
    return counts
