"""The demo competition: a synthetic TensorFlow Speech Recognition Challenge made with espeak-ng.

It is laid out and archived exactly like the real download (``train.7z``, ``test.7z``,
``sample_submission.7z`` in one zip), so the whole workflow runs on it through the same code paths,
with no credentials and in minutes. Its speech is synthetic: models trained on it say nothing about
the real competition. It exists to exercise and test the workflow end to end.

Each "speaker" is an espeak-ng voice (English accents plus a few foreign voices reading English)
with a voice variant, pitch, speed, a recording device (band limits), a room (reverberation) and a
noisy environment. The test set has unseen speakers, noisier audio, words outside the 30, and
silence cut from noise recordings the training set does not contain. The hidden solution is written
beside the competition files, never inside them. Everything derives from one seed.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal
from tqdm import tqdm

from . import archives
from .errors import ExplainedError
from .labels import AUXILIARY_WORDS, COMMANDS, NOISE_FILES, NOISE_FOLDER, WORDS, official_split

log = logging.getLogger(__name__)

RATE = 16000
CLIP = RATE  # one second

#: Words of the test set that the training set never has; they are scored as ``unknown``
#: (the dataset's second version added these five).
UNSEEN_WORDS = ("backward", "forward", "follow", "learn", "visual")

ENGLISH_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
ACCENTED_VOICES = ("de", "fr", "es", "nl", "it", "pl", "sv", "pt")
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "Andy", "Annie", "Denis", "Gene", "Jacky", "Lee", "Mike", "Michael", "Alicia", "Andrea", "aunty",
    "belinda", "boris", "david", "edward", "grandma", "grandpa", "john", "linda", "max", "norbert",
    "paul", "rob", "robert", "steph", "travis", "victor", "whisper", "croak",
)  # fmt: skip
NOISE_KINDS = ("white", "pink", "tap", "bike", "dishes", "miaow")


@dataclass(frozen=True)
class DemoSize:
    train_speakers: int
    words_per_speaker: int  # each speaker says this many distinct words (most of them once)
    test_speakers: int
    test_clips_per_speaker: int
    noise_seconds: float  # length of each background-noise recording


SIZES = {
    "tiny": DemoSize(train_speakers=24, words_per_speaker=14, test_speakers=8, test_clips_per_speaker=12, noise_seconds=12),
    "small": DemoSize(train_speakers=80, words_per_speaker=18, test_speakers=30, test_clips_per_speaker=16, noise_seconds=30),
    "default": DemoSize(train_speakers=220, words_per_speaker=20, test_speakers=90, test_clips_per_speaker=20, noise_seconds=60),
}


class MissingSystemPackage(ExplainedError, RuntimeError):
    pass


def require_espeak() -> str:
    """Path of espeak-ng, or an error that says how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise MissingSystemPackage(
            "The demo competition is spoken by espeak-ng, which is not installed. Install it with "
            "'sudo apt-get install espeak-ng' (Debian/Ubuntu), 'brew install espeak-ng' (macOS) or "
            "'conda install -c conda-forge espeak-ng' — or set 'source: kaggle' to use the real competition."
        )
    return path


# ---------------------------------------------------------------- noise -------------------------------


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / (np.max(np.abs(x)) + 1e-9)


def make_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A procedural stand-in for one of the competition's background recordings, peak 1."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    if kind == "white":
        return _normalise(rng.standard_normal(n))
    if kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        return _normalise(np.fft.irfft(spectrum, n))
    if kind == "tap":  # running water: band-passed noise with a slow swell
        b, a = signal.butter(2, [300, 4000], btype="band", fs=RATE)
        swell = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t)
        return _normalise(signal.lfilter(b, a, rng.standard_normal(n)) * swell)
    if kind == "bike":  # periodic thumps and squeaks over a hum
        rate = rng.uniform(0.8, 1.6)
        phase = (t * rate) % 1.0
        thump = np.exp(-phase * 25) * np.sin(2 * np.pi * 70 * t)
        squeak = (np.abs(phase - 0.5) < 0.05) * np.sin(2 * np.pi * rng.uniform(900, 1800) * t)
        return _normalise(thump + 0.3 * squeak + 0.05 * rng.standard_normal(n))
    if kind == "dishes":  # clinks: decaying tones at random times, over water
        out = 0.05 * rng.standard_normal(n)
        for start in rng.integers(0, n, size=max(1, int(seconds * 3))):
            length = min(n - start, int(0.15 * RATE))
            tt = np.arange(length) / RATE
            out[start : start + length] += np.exp(-tt * 40) * np.sin(2 * np.pi * rng.uniform(1500, 6000) * tt)
        return _normalise(out)
    if kind == "miaow":  # harmonic sweeps now and then
        out = 0.02 * rng.standard_normal(n)
        for start in rng.integers(0, n, size=max(1, int(seconds / 2))):
            length = min(n - start, int(rng.uniform(0.4, 0.9) * RATE))
            tt = np.arange(length) / RATE
            f0 = rng.uniform(350, 600) * (1 + 0.6 * np.sin(np.pi * tt / tt[-1] if length > 1 else tt))
            phase = 2 * np.pi * np.cumsum(f0) / RATE
            tone = sum(np.sin(k * phase) / k for k in (1, 2, 3))
            out[start : start + length] += np.hanning(length) * tone
        return _normalise(out)
    raise ValueError(f"unknown noise kind {kind!r}")


# ---------------------------------------------------------------- speakers and clips ------------------


@dataclass(frozen=True)
class Speaker:
    id: str
    voice: str
    pitch: int
    speed: int
    highpass_hz: float
    lowpass_hz: float
    reverb_seconds: float  # 0: a dry room
    noise_kind: str
    snr_db: float | None  # None: a quiet room
    level_db: float  # peak level in dBFS


def _variants_available() -> tuple[str, ...]:
    voices_dir = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v")
    try:
        output = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
        data_dir = output.split("Data at:")[-1].strip()
        voices_dir = Path(data_dir) / "voices" / "!v"
    except (OSError, subprocess.CalledProcessError):
        pass
    present = {path.name for path in voices_dir.glob("*")} if voices_dir.is_dir() else set()
    return tuple(v for v in VARIANTS if v in present) or ("",)


def make_speaker(rng: np.random.Generator, test: bool, variants: tuple[str, ...], taken: set[str]) -> Speaker:
    while (speaker_id := f"{rng.integers(0, 2**32):08x}") in taken:
        pass
    taken.add(speaker_id)
    base = rng.choice(ACCENTED_VOICES) if rng.random() < 0.15 else rng.choice(ENGLISH_VOICES)
    variant = rng.choice(variants)
    noisy = rng.random() < (0.9 if test else 0.6)
    return Speaker(
        id=speaker_id,
        voice=f"{base}+{variant}" if variant else str(base),
        pitch=int(rng.integers(15, 85)),
        speed=int(rng.integers(120, 200)),
        highpass_hz=float(rng.uniform(40, 300)),
        lowpass_hz=float(rng.uniform(3500, 7800)),
        reverb_seconds=float(rng.uniform(0.1, 0.6)) if rng.random() < 0.6 else 0.0,
        noise_kind=str(rng.choice(NOISE_KINDS)),
        snr_db=float(rng.uniform(0, 25) if test else rng.uniform(12, 40)) if noisy else None,
        level_db=float(rng.uniform(-30, -1)),
    )


def speak(word: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    """espeak-ng's rendering of ``word`` at 16 kHz, leading and trailing silence removed."""
    command = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", word]
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float64")
    samples = signal.resample_poly(samples, RATE, rate) if rate != RATE else samples
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.max(np.abs(samples)))
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def record(speech: np.ndarray, speaker: Speaker, rng: np.random.Generator, length: int) -> np.ndarray:
    """Place ``speech`` in a clip of ``length`` samples as ``speaker``'s device and room would record it."""
    b, a = signal.butter(2, [speaker.highpass_hz, speaker.lowpass_hz], btype="band", fs=RATE)
    voice = signal.lfilter(b, a, speech)
    if speaker.reverb_seconds > 0:
        ir_length = int(speaker.reverb_seconds * RATE)
        impulse = rng.standard_normal(ir_length) * np.exp(-6.9 * np.arange(ir_length) / ir_length)
        impulse[0] = 1.0 / rng.uniform(0.15, 0.5)  # the direct path dominates the tail
        voice = signal.fftconvolve(voice, impulse)[: len(voice) + ir_length // 2]
    voice = _normalise(voice)
    clip = np.zeros(length)
    if len(voice) >= length:  # a word spoken slower than the clip lasts is cut, as in the real data
        clip[:] = voice[:length]
    else:
        start = int(rng.integers(0, length - len(voice) + 1))
        clip[start : start + len(voice)] = voice
    if speaker.snr_db is not None:
        noise = make_noise(speaker.noise_kind, length / RATE + 0.01, rng)[:length]
        speech_power = np.mean(clip**2)
        noise_power = np.mean(noise**2) + 1e-12
        clip = clip + noise * np.sqrt(speech_power / noise_power / 10 ** (speaker.snr_db / 10))
    return _normalise(clip) * 10 ** ((speaker.level_db + rng.uniform(-3, 3)) / 20)


@dataclass(frozen=True)
class ClipJob:
    path: str  # relative to the staging folder
    word: str | None  # None: a silence clip cut from test noise
    speaker: Speaker | None
    seed: tuple[int, ...]
    length: int
    noise_file: str = ""  # silence clips: the .npy of the noise to cut from


def render(job: ClipJob, staging: str) -> None:
    rng = np.random.default_rng(job.seed)
    if job.word is None:
        noise = np.load(job.noise_file, mmap_mode="r")
        start = int(rng.integers(0, len(noise) - job.length))
        clip = np.asarray(noise[start : start + job.length]) * 10 ** (rng.uniform(-45, -6) / 20)
    else:
        s = job.speaker
        pitch = int(np.clip(s.pitch + rng.integers(-6, 7), 0, 99))
        speed = int(s.speed * rng.uniform(0.88, 1.12))
        clip = record(speak(job.word, s.voice, pitch, speed), s, rng, job.length)
    target = Path(staging) / job.path
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, clip, RATE, subtype="PCM_16")


# ---------------------------------------------------------------- the competition ---------------------


def plan(size: DemoSize, seed: int, noise_dir: Path) -> tuple[list[ClipJob], pd.DataFrame]:
    """All clips to render, and the hidden test solution. Pure: depends on the seed only."""
    rng = np.random.default_rng([seed, 0])
    variants = _variants_available()
    taken: set[str] = set()
    jobs: list[ClipJob] = []

    # Train: every word gets the same number of speakers, so that no fold starves a class.
    word_deck: list[str] = []
    for index in range(size.train_speakers):
        speaker = make_speaker(rng, test=False, variants=variants, taken=taken)
        words = []
        while len(words) < size.words_per_speaker:
            if not word_deck:
                word_deck = list(rng.permutation(WORDS))
            word = word_deck.pop()
            if word not in words:
                words.append(word)
        for word in words:
            repeats = 1 + int(rng.random() < 0.15) + int(rng.random() < 0.05)
            for repeat in range(repeats):
                # About 3% of clips are shorter than a second, as in the real training set.
                length = int(rng.uniform(0.55, 0.97) * CLIP) if rng.random() < 0.03 else CLIP
                jobs.append(
                    ClipJob(f"train/audio/{word}/{speaker.id}_nohash_{repeat}.wav", word, speaker, (seed, 1, len(jobs)), length)
                )

    # Test: unseen speakers, noisier; 41% commands, 50% unknown (some never seen in train), 9% silence.
    solution = []
    test_noise = noise_dir / "test_noise.npy"
    taken_clips: set[str] = set()
    for index in range(size.test_speakers):
        speaker = make_speaker(rng, test=True, variants=variants, taken=taken)
        for _ in range(size.test_clips_per_speaker):
            while (name := f"clip_{rng.integers(0, 16**9):09x}.wav") in taken_clips:
                pass
            taken_clips.add(name)
            draw = rng.random()
            if draw < 0.09:
                word, label, clip_speaker = None, "silence", None
            elif draw < 0.50:
                word = str(rng.choice(COMMANDS))
                label, clip_speaker = word, speaker
            else:
                word = str(rng.choice(UNSEEN_WORDS if rng.random() < 0.4 else AUXILIARY_WORDS))
                label, clip_speaker = "unknown", speaker
            jobs.append(ClipJob(f"test/audio/{name}", word, clip_speaker, (seed, 2, len(jobs)), CLIP, str(test_noise)))
            usage = "Public" if rng.random() < 0.3 else "Private"
            solution.append((name, label, usage, word or "", speaker.id if clip_speaker else ""))
    solution_frame = pd.DataFrame(solution, columns=["fname", "label", "Usage", "word", "speaker"]).sort_values("fname")
    return jobs, solution_frame.reset_index(drop=True)


def write_noise(staging: Path, size: DemoSize, seed: int, noise_dir: Path) -> None:
    """The six background recordings of train (and a separate noise pool for test silence)."""
    folder = staging / "train" / "audio" / NOISE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for index, (name, kind) in enumerate(zip(NOISE_FILES, ("dishes", "miaow", "bike", "pink", "tap", "white"))):
        noise = make_noise(kind, size.noise_seconds, np.random.default_rng([seed, 3, index]))
        sf.write(folder / name, 0.5 * noise, RATE, subtype="PCM_16")
    (folder / "README.md").write_text(
        "Synthetic background noise of the wavefold demo competition, named like the real recordings.\n"
    )
    pool = [make_noise(kind, 10, np.random.default_rng([seed, 4, i])) for i, kind in enumerate(NOISE_KINDS)]
    np.save(noise_dir / "test_noise.npy", 0.5 * np.concatenate(pool))


def write_lists(staging: Path, train_paths: list[str]) -> None:
    """validation_list.txt and testing_list.txt, assigned by the dataset's own speaker hash."""
    lists = {"validation": [], "testing": []}
    for path in sorted(train_paths):
        relative = path.removeprefix("train/audio/")
        split = official_split(Path(relative).name)
        if split in lists:
            lists[split].append(relative)
    for split, paths in lists.items():
        (staging / "train" / f"{split}_list.txt").write_text("".join(p + "\n" for p in paths))


def generate(out_dir: Path, size_name: str, seed: int, competition: str, workers: int = 1) -> dict:
    """Write ``<competition>.zip`` (the three .7z archives) and ``solution.csv`` into ``out_dir``."""
    require_espeak()
    if size_name not in SIZES:
        raise ValueError(f"demo size {size_name!r} is not one of {sorted(SIZES)} (config key demo.size)")
    size = SIZES[size_name]
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".staging-") as tmp:
        staging = Path(tmp)
        write_noise(staging, size, seed, staging)
        jobs, solution = plan(size, seed, staging)
        log.info("demo %s (seed %d): %d clips to synthesise with %d workers", size_name, seed, len(jobs), workers)
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = pool.map(render, jobs, [str(staging)] * len(jobs), chunksize=16)
            for _ in tqdm(futures, total=len(jobs), desc="synthesising clips", mininterval=5):
                pass
        train_paths = [job.path for job in jobs if job.path.startswith("train/")]
        write_lists(staging, train_paths)
        (staging / "train" / "README.md").write_text("wavefold demo competition: synthetic speech (espeak-ng).\n")
        (staging / "train" / "LICENSE").write_text("Synthetic data generated by wavefold; no rights reserved.\n")
        sample = pd.DataFrame({"fname": solution["fname"], "label": "silence"})
        sample.to_csv(staging / "sample_submission.csv", index=False)

        archive_dir = staging / "archives"
        archives.pack_7z(staging, archive_dir / "train.7z", ["train"])
        archives.pack_7z(staging, archive_dir / "test.7z", ["test"])
        archives.pack_7z(staging, archive_dir / "sample_submission.7z", ["sample_submission.csv"])
        credits = archive_dir / "link_to_gcp_credits_form.txt"
        credits.write_text("The demo competition has no credits form.\n")
        paths = [archive_dir / name for name in archives.COMPETITION_ARCHIVES] + [credits]
        archives.pack_competition_zip(paths, out_dir / f"{competition}.zip")
    solution.to_csv(out_dir / "solution.csv", index=False)
    counts = {
        "train_clips": len(train_paths),
        "train_speakers": size.train_speakers,
        "test_clips": len(solution),
        "test_labels": solution["label"].value_counts().to_dict(),
        "zip_bytes": os.path.getsize(out_dir / f"{competition}.zip"),
    }
    log.info("demo written: %s", counts)
    return counts
