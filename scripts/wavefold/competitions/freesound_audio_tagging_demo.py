"""The demo of the Freesound audio tagging challenge: synthetic sound events in the real download's
files and formats.

``<slug>.zip`` holds ``audio_train.zip``, ``audio_test.zip`` (44.1 kHz, 16-bit mono WAV clips named
``<8 hex digits>.wav``), ``train.csv`` (``fname,label,manually_verified``) and
``sample_submission.csv``; the hidden ``solution.csv`` (``fname,label``) is written beside it.

Each of the 41 labels is one kind of synthetic event with parameters of its own: a tone, a chirp, a
click train, a band of noise, a harmonic stack, or a word spoken by espeak-ng (the vocal sounds).
Every clip holds events of its one label, repeated at random onsets, with its parameters jittered,
in background noise at a random SNR. Clip lengths are drawn like the real ones (0.3 to 30 s,
most a few seconds). About 40% of the training labels are marked unverified, and a quarter of those
are wrong (another label's event), as the real ones are noisy. Test labels are all right.

``shift`` (``demo.shift``): ``none`` and ``mild`` (the default) draw the test clips like training's,
``mild`` at a lower SNR; ``hard`` lowers it further and band-limits the test audio. Everything
derives from the seed.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal
from tqdm import tqdm

from .. import archives
from .freesound_audio_tagging import DOWNLOAD_FILES, LABELS, TEST_FOLDER, TRAIN_FOLDER, FreesoundAudioTagging
from .tensorflow_speech_demo import espeak_installation, require_espeak

log = logging.getLogger(__name__)

RATE = 44100
FAMILIES = ("tone", "chirp", "clicks", "noise", "harmonic")

#: The vocal labels are espeak-ng saying a word of their own.
SPOKEN = {
    "Burping_or_eructation": "burp", "Cough": "cough", "Fart": "pfft", "Laughter": "ha ha ha",
    "Meow": "meow", "Bark": "woof", "Telephone": "ring ring",
}  # fmt: skip


@dataclass(frozen=True)
class DemoSize:
    train_per_label: int
    test_per_label: int
    max_seconds: float  # the longest clip (the real ones reach 30 s)


SIZES = {
    "tiny": DemoSize(train_per_label=6, test_per_label=2, max_seconds=6.0),
    "small": DemoSize(train_per_label=20, test_per_label=6, max_seconds=15.0),
    "default": DemoSize(train_per_label=50, test_per_label=15, max_seconds=30.0),
}
#: shift -> (SNR range in dB of the test clips, low-pass cut-off of the test audio or None)
SHIFTS = {"none": ((10.0, 30.0), None), "mild": ((5.0, 25.0), None), "hard": ((0.0, 15.0), 3000.0)}
TRAIN_SNR = (10.0, 30.0)
UNVERIFIED_SHARE, WRONG_SHARE_OF_UNVERIFIED = 0.4, 0.25


@dataclass(frozen=True)
class Event:
    """One label's sound: its family and parameters."""

    family: str
    frequency: float  # Hz: a tone's, a chirp's start, a stack's fundamental, a noise band's centre
    rate: float  # a chirp's end factor, clicks per second, a stack's partial count
    seconds: float  # one event's length
    word: str = ""


def label_events(seed: int, labels=LABELS, spoken=SPOKEN) -> dict[str, Event]:
    """Each label's event, fixed by the seed: the families in turn, parameters spread out so that
    labels of one family differ. ``spoken``: label -> the word espeak-ng says for it."""
    rng = np.random.default_rng([seed, len(labels)])
    events = {}
    others = [label for label in labels if label not in spoken]
    frequencies = np.geomspace(150, 4000, len(others))[rng.permutation(len(others))]
    for i, label in enumerate(others):
        family = FAMILIES[i % len(FAMILIES)]
        rate = {"tone": 0, "chirp": float(rng.choice([0.5, 2.0])), "clicks": float(rng.uniform(3, 25)),
                "noise": float(rng.uniform(0.2, 0.8)), "harmonic": float(rng.integers(2, 9))}[family]  # fmt: skip
        events[label] = Event(family, float(frequencies[i]), rate, float(rng.uniform(0.15, 0.8)))
    for label, word in spoken.items():
        events[label] = Event("word", 0.0, 0.0, 0.0, word)
    return events


def _envelope(n: int) -> np.ndarray:
    attack = max(1, n // 20)
    return np.concatenate([np.linspace(0, 1, attack), np.exp(-3 * np.linspace(0, 1, n - attack))])


def speak(word: str, pitch: int, speed: int) -> np.ndarray:
    """espeak-ng saying ``word``, at the demo's rate."""
    command = ["espeak-ng", "-v", "en-us", "-p", str(pitch), "-s", str(speed), "--stdout", word]
    samples, rate = sf.read(io.BytesIO(subprocess.run(command, capture_output=True, check=True).stdout))
    return signal.resample_poly(samples, RATE, rate)


def render_event(event: Event, rng: np.random.Generator) -> np.ndarray:
    """One occurrence of ``event``, its parameters jittered by a few percent."""
    if event.family == "word":
        return speak(event.word, int(rng.integers(20, 80)), int(rng.integers(130, 200)))
    n = int(RATE * event.seconds * rng.uniform(0.8, 1.25))
    t = np.arange(n) / RATE
    f = event.frequency * rng.uniform(0.95, 1.05)
    if event.family == "tone":
        wave = np.sin(2 * np.pi * f * t)
    elif event.family == "chirp":
        wave = signal.chirp(t, f, t[-1], f * event.rate, method="logarithmic")
    elif event.family == "clicks":
        wave = np.zeros(n)
        step = max(1, int(RATE / (event.rate * rng.uniform(0.9, 1.1))))
        wave[::step] = 1.0
        b, a = signal.butter(2, [f * 0.7, min(f * 1.4, RATE / 2 - 1)], btype="band", fs=RATE)
        return signal.lfilter(b, a, wave) * 4
    elif event.family == "noise":
        width = event.rate * f
        b, a = signal.butter(2, [max(30.0, f - width / 2), min(f + width / 2, RATE / 2 - 1)], btype="band", fs=RATE)
        wave = signal.lfilter(b, a, rng.standard_normal(n))
    else:  # harmonic stack with a falling tilt
        partials = np.arange(1, int(event.rate) + 1)
        wave = (np.sin(2 * np.pi * f * partials[:, None] * t) / partials[:, None]).sum(0)
    return wave * _envelope(n)


@dataclass(frozen=True)
class ClipJob:
    path: str
    label: str  # the event the clip holds
    seconds: float
    snr_db: float
    lowpass_hz: float | None
    seed: int
    others: tuple[str, ...] = ()  # more labels the clip holds, their events overlapping (multi-label demos)


def render(job: ClipJob, events: dict[str, Event], staging: str) -> None:
    rng = np.random.default_rng(job.seed)
    length = max(1, int(job.seconds * RATE))
    clip = np.zeros(length)
    # Each label's events one after another, the first within the first third; several labels' sequences
    # overlap, as the sounds of a real multi-label clip do.
    for label in (job.label, *job.others):
        onset = int(rng.uniform(0, 0.3) * length)
        while onset < length:
            sound = render_event(events[label], rng)
            sound = sound / (np.max(np.abs(sound)) + 1e-9) * rng.uniform(0.5, 1.0)
            end = min(length, onset + len(sound))
            clip[onset:end] += sound[: end - onset]
            onset = end + int(rng.uniform(0.1, 1.5) * RATE)
    noise = signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(length))  # brownish room noise
    power = max(np.mean(clip**2), 1e-8)
    clip += noise * np.sqrt(power / np.mean(noise**2) / 10 ** (job.snr_db / 10))
    if job.lowpass_hz:
        clip = signal.sosfilt(signal.butter(4, job.lowpass_hz, fs=RATE, output="sos"), clip)
    clip = clip / (np.max(np.abs(clip)) + 1e-9) * rng.uniform(0.3, 0.9)
    path = Path(staging) / job.path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, clip, RATE, subtype="PCM_16")


def clip_seconds(rng: np.random.Generator, count: int, longest: float) -> np.ndarray:
    """Lengths like the real clips': log-normal around 3 s, from 0.3 s to ``longest``."""
    return np.clip(np.exp(rng.normal(np.log(3.0), 0.9, count)), 0.3, longest).round(3)


def plan(size: DemoSize, seed: int, shift: str) -> tuple[list[ClipJob], pd.DataFrame, pd.DataFrame]:
    """(clips to render, train.csv, solution.csv)."""
    rng = np.random.default_rng([seed, 2018])
    n_train, n_test = size.train_per_label * len(LABELS), size.test_per_label * len(LABELS)
    names = [f"{value:08x}.wav" for value in rng.choice(16**8, n_train + n_test, replace=False)]
    train_names, test_names = sorted(names[:n_train]), sorted(names[n_train:])
    train_truth = rng.permutation(np.repeat(np.arange(len(LABELS)), size.train_per_label))
    test_truth = rng.permutation(np.repeat(np.arange(len(LABELS)), size.test_per_label))
    verified = rng.random(n_train) >= UNVERIFIED_SHARE
    wrong = ~verified & (rng.random(n_train) < WRONG_SHARE_OF_UNVERIFIED)
    given = train_truth.copy()  # a wrong label is another label: the clip holds its true event
    given[wrong] = (train_truth[wrong] + rng.integers(1, len(LABELS), int(wrong.sum()))) % len(LABELS)
    (test_low, test_high), lowpass = SHIFTS[shift]
    jobs = []
    for names_, truth, folder, snr, cut in (
        (train_names, train_truth, TRAIN_FOLDER, TRAIN_SNR, None),
        (test_names, test_truth, TEST_FOLDER, (test_low, test_high), lowpass),
    ):
        seconds = clip_seconds(rng, len(names_), size.max_seconds)
        snrs = rng.uniform(*snr, len(names_))
        seeds = rng.integers(0, 2**31, len(names_))
        jobs += [ClipJob(f"{folder}/{name}", LABELS[t], float(s), float(d), cut, int(k))
                 for name, t, s, d, k in zip(names_, truth, seconds, snrs, seeds)]  # fmt: skip
    train = pd.DataFrame({"fname": train_names, "label": np.array(LABELS)[given], "manually_verified": verified.astype(int)})
    # Kaggle scored 19% of the test clips on the public leaderboard, the rest at the end (private).
    usage = np.where(rng.random(n_test) < 0.19, "Public", "Private")
    solution = pd.DataFrame({"fname": test_names, "label": np.array(LABELS)[test_truth], "Usage": usage})
    return jobs, train, solution


def check_size_and_shift(size_name: str, sizes: dict, shift: str) -> None:
    if size_name not in sizes:
        raise ValueError(f"demo size {size_name!r} is not one of {sorted(sizes)} (config key demo.size)")
    if shift not in SHIFTS:
        raise ValueError(f"demo shift {shift!r} is not one of {sorted(SHIFTS)} (config key demo.shift)")


def render_all(jobs: list[ClipJob], events: dict[str, Event], staging: Path, workers: int) -> None:
    """Synthesise every clip into ``staging``, on ``workers`` processes."""
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        done = pool.map(render, jobs, [events] * len(jobs), [str(staging)] * len(jobs), chunksize=8)
        for _ in tqdm(done, total=len(jobs), desc="synthesising clips", mininterval=5):
            pass


def _zip_folder(staging: Path, folder: str, archive: Path) -> None:
    """Zip ``staging/folder`` with the folder inside, as Kaggle's audio zips are."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zipped:
        for path in sorted((staging / folder).glob("*.wav")):
            zipped.write(path, f"{folder}/{path.name}")


def generate(out_dir: Path, size_name: str, seed: int, workers: int = 1, shift: str = "mild") -> dict:
    """Write ``freesound-audio-tagging.zip`` and ``solution.csv`` into ``out_dir``."""
    require_espeak()
    check_size_and_shift(size_name, SIZES, shift)
    slug = FreesoundAudioTagging.slug
    events = label_events(seed)
    jobs, train, solution = plan(SIZES[size_name], seed, shift)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("demo %s, shift %s (seed %d): %d clips to synthesise with %d workers", size_name, shift, seed,
             len(jobs), workers)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".staging-") as tmp:
        staging = Path(tmp)
        render_all(jobs, events, staging, workers)
        files = staging / "files"
        files.mkdir()
        _zip_folder(staging, TRAIN_FOLDER, files / "audio_train.zip")
        _zip_folder(staging, TEST_FOLDER, files / "audio_test.zip")
        train.to_csv(files / "train.csv", index=False)
        sample = pd.DataFrame({"fname": solution["fname"], "label": "Laughter Hi-hat Flute"})
        sample.to_csv(files / "sample_submission.csv", index=False)
        archives.pack_competition_zip([files / name for name in DOWNLOAD_FILES], out_dir / f"{slug}.zip")
    solution.to_csv(out_dir / "solution.csv", index=False)
    counts = {
        "train_clips": len(train),
        "unverified": int((train["manually_verified"] == 0).sum()),
        "test_clips": len(solution),
        "shift": shift,
        "seconds": float(sum(job.seconds for job in jobs)),
        "zip_bytes": os.path.getsize(out_dir / f"{slug}.zip"),
        "espeak_ng": espeak_installation()[0],  # the vocal events' words, spoken by this version
    }
    log.info("demo written: %s", counts)
    return counts
