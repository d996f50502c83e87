"""The demo competition: a synthetic TensorFlow Speech Recognition Challenge made with espeak-ng.

It is laid out and archived exactly like the real download (``train.7z``, ``test.7z``,
``sample_submission.7z`` in one zip), so the whole workflow runs on it through the same code paths,
with no credentials and in minutes. Its speech is synthetic: models trained on it say nothing about
the real competition. It exists to exercise and test the workflow end to end.

Each "speaker" is an espeak-ng voice (English accents plus a few foreign voices reading English)
with a voice variant, pitch, speed, a recording device (band limits, EQ), a room (reverberation) and
a noisy environment. How far the test set is shifted away from training is a setting
(``demo.shift``, the :data:`SHIFTS` below, documented in docs/demo.md):

- ``none``: test speakers are new people drawn from training's own conditions, words and label mix;
- ``mild`` (the default): noisier test audio, words outside the 30, a test label mix of 50% unknown;
- ``hard``: test voices, voice variants, pitch and speed ranges, recording bands and EQ, rooms and
  noise types that training never has, lower SNR, novel words, and 22% unknown against ~60% in train.

The hidden solution is written beside the competition files, never inside them. Everything derives
from one seed.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal
from tqdm import tqdm

from .. import archives
from ..errors import ExplainedError
from .tensorflow_speech import (
    ARCHIVES,
    AUXILIARY_WORDS,
    COMMANDS,
    NOISE_FILES,
    NOISE_FOLDER,
    WORDS,
    SpeechChallenge,
    official_split,
)

log = logging.getLogger(__name__)

RATE = 16000
CLIP = RATE  # one second

#: Words of the test set that the training set never has; they are scored as ``unknown``
#: (the dataset's second version added these five).
UNSEEN_WORDS = ("backward", "forward", "follow", "learn", "visual")

ENGLISH_VOICES = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
ACCENTED_VOICES = ("de", "fr", "es", "nl", "it", "pl", "sv", "pt")
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "Andy", "Annie", "Denis", "Gene", "Jacky", "Lee", "Mike", "Michael", "Alicia", "Andrea", "aunty",
    "belinda", "boris", "david", "edward", "grandma", "grandpa", "john", "linda", "max", "norbert",
    "paul", "rob", "robert", "steph", "travis", "victor", "whisper", "croak",
)  # fmt: skip
NOISE_KINDS = ("white", "pink", "tap", "bike", "dishes", "miaow")

# Used only by the hard shift's test set: voices, variants and noises training never has.
NOVEL_ENGLISH_VOICES = ("en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
NOVEL_ACCENTED_VOICES = ("it", "pl", "sv", "pt")
NOVEL_VARIANTS = (
    "Alex", "Diogo", "Gene2", "Henrique", "Hugo", "Marco", "Mario", "Storm", "Tweaky", "adam", "anika",
    "announcer", "antonio", "benjamin", "caleb", "ed", "edward2", "iven", "iven2", "klatt4", "klatt5",
    "m8", "marcelo", "michel", "miguel", "pablo", "pedro", "quincy", "sandro", "shelby", "steph2", "zac",
)  # fmt: skip
NOVEL_NOISE_KINDS = ("hum", "traffic", "chatter")


@dataclass(frozen=True)
class DemoSize:
    train_speakers: int
    words_per_speaker: int  # each speaker says this many distinct words (most of them once)
    test_speakers: int
    test_clips_per_speaker: int
    noise_seconds: float  # length of each background-noise recording


SIZES = {
    "tiny": DemoSize(
        train_speakers=24, words_per_speaker=14, test_speakers=8, test_clips_per_speaker=12, noise_seconds=12
    ),
    "small": DemoSize(
        train_speakers=80, words_per_speaker=18, test_speakers=30, test_clips_per_speaker=16, noise_seconds=30
    ),
    "default": DemoSize(
        train_speakers=220, words_per_speaker=20, test_speakers=90, test_clips_per_speaker=20, noise_seconds=60
    ),
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
    if kind == "hum":  # mains hum and its harmonics, a buzzing fridge or amplifier
        mains = rng.choice((50.0, 60.0))
        out = sum(np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 9))
        return _normalise(out + 0.1 * rng.standard_normal(n))
    if kind == "traffic":  # low rumble that swells as cars pass
        rumble = np.cumsum(rng.standard_normal(n))
        rumble = signal.lfilter(*signal.butter(2, [20, 600], btype="band", fs=RATE), rumble)
        passes = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t) ** 2
        return _normalise(rumble * passes)
    if kind == "chatter":  # babble: overlapping bursts of noise shaped by moving formant bands
        out = np.zeros(n)
        for start in rng.integers(0, n, size=max(1, int(seconds * 6))):
            length = min(n - start, int(rng.uniform(0.1, 0.4) * RATE))
            if length < 32:
                continue
            centre = rng.uniform(300, 2500)
            b, a = signal.butter(2, [centre * 0.7, centre * 1.3], btype="band", fs=RATE)
            out[start : start + length] += np.hanning(length) * signal.lfilter(b, a, rng.standard_normal(length))
        return _normalise(out + 0.02 * rng.standard_normal(n))
    raise ValueError(f"unknown noise kind {kind!r}")


# ---------------------------------------------------------------- speakers and clips ------------------


Range = tuple[tuple[float, float], ...]  # one or more intervals a value is drawn from


@dataclass(frozen=True)
class Conditions:
    """Where one side's speakers (train or test) are drawn from: voices, device, room and noise."""

    english_voices: tuple[str, ...]
    accented_voices: tuple[str, ...]
    accented_share: float
    variants: tuple[str, ...]  # espeak-ng voice variants, those installed are used
    pitch: Range
    speed: Range  # words per minute
    highpass_hz: Range
    lowpass_hz: Range
    reverb_share: float
    reverb_seconds: Range
    noise_kinds: tuple[str, ...]
    noisy_share: float
    snr_db: Range
    eq_bands: int = 0  # peaking EQ bands per device (0: flat)


@dataclass(frozen=True)
class TestMix:
    """The test set's label mix: silence and command shares; the rest is unknown words."""

    silence: float
    commands: float
    unseen_words: float  # share of the unknown clips that say a word training never has


@dataclass(frozen=True)
class Shift:
    train: Conditions
    test: Conditions
    test_mix: TestMix


_MILD_TRAIN = Conditions(
    english_voices=ENGLISH_VOICES, accented_voices=ACCENTED_VOICES, accented_share=0.15, variants=VARIANTS,
    pitch=((15, 85),), speed=((120, 200),), highpass_hz=((40, 300),), lowpass_hz=((3500, 7800),),
    reverb_share=0.6, reverb_seconds=((0.1, 0.6),), noise_kinds=NOISE_KINDS, noisy_share=0.6, snr_db=((12, 40),),
)  # fmt: skip
_HARD_TRAIN = Conditions(
    english_voices=("en-us", "en", "en-gb-x-rp", "en-029"), accented_voices=("de", "fr", "es", "nl"),
    accented_share=0.1, variants=VARIANTS, pitch=((30, 70),), speed=((135, 185),), highpass_hz=((40, 150),),
    lowpass_hz=((5000, 7800),), reverb_share=0.5, reverb_seconds=((0.1, 0.4),), noise_kinds=NOISE_KINDS,
    noisy_share=0.5, snr_db=((15, 40),),
)  # fmt: skip
_HARD_TEST = Conditions(
    english_voices=NOVEL_ENGLISH_VOICES, accented_voices=NOVEL_ACCENTED_VOICES, accented_share=0.4,
    variants=NOVEL_VARIANTS, pitch=((0, 30), (70, 99)), speed=((95, 135), (185, 240)),
    highpass_hz=((150, 500),), lowpass_hz=((2400, 4200),), reverb_share=0.9, reverb_seconds=((0.5, 1.2),),
    noise_kinds=NOVEL_NOISE_KINDS, noisy_share=1.0, snr_db=((0, 20),), eq_bands=2,
)  # fmt: skip

#: ``demo.shift``: how the test set differs from training. ``mild`` is the demo as it always was.
SHIFTS = {
    "none": Shift(
        train=_MILD_TRAIN, test=_MILD_TRAIN, test_mix=TestMix(silence=0.09, commands=0.91 / 3, unseen_words=0.0)
    ),
    "mild": Shift(
        train=_MILD_TRAIN,
        test=replace(_MILD_TRAIN, noisy_share=0.9, snr_db=((0, 25),)),
        test_mix=TestMix(silence=0.09, commands=0.41, unseen_words=0.4),
    ),
    "hard": Shift(
        train=_HARD_TRAIN,
        test=_HARD_TEST,
        test_mix=TestMix(silence=0.09, commands=0.69, unseen_words=0.6),
    ),
}


def _draw(rng: np.random.Generator, intervals: Range, integer: bool = False) -> float:
    """A uniform draw from one interval, or from a union of intervals weighted by their lengths."""
    if len(intervals) > 1:
        widths = np.array([high - low for low, high in intervals], dtype=float)
        intervals = (intervals[int(rng.choice(len(intervals), p=widths / widths.sum()))],)
    low, high = intervals[0]
    return int(rng.integers(low, high)) if integer else float(rng.uniform(low, high))


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
    eq: tuple[tuple[float, float], ...] = ()  # peaking bands: (centre Hz, gain dB)


def espeak_installation() -> tuple[str, Path]:
    """This espeak-ng's version ("1.51") and the folder of its voice variants."""
    voices_dir = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v")
    try:
        output = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "not installed", voices_dir
    match = re.search(r"text-to-speech:\s*(\S+)", output)
    if "Data at:" in output:
        voices_dir = Path(output.split("Data at:")[-1].strip()) / "voices" / "!v"
    return (match[1] if match else output.strip()), voices_dir


def required_variants(wanted: tuple[str, ...]) -> tuple[str, ...]:
    """``wanted``, once it is sure that this espeak-ng has every one of them: a missing variant would
    change which voice every later speaker draws, and the demo would no longer follow from its seed."""
    version, voices_dir = espeak_installation()
    present = {path.name for path in voices_dir.glob("*")} if voices_dir.is_dir() else set()
    missing = [variant for variant in wanted if variant not in present]
    if missing:
        raise MissingSystemPackage(
            f"espeak-ng {version} (voice variants in {voices_dir}) lacks {len(missing)} voice variants the demo "
            f"draws its speakers from ({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}); without them "
            "the demo would not be the one its seed names. Install the espeak-ng of Debian 12 or newer "
            "('sudo apt-get install espeak-ng', version 1.51, which has them all), or use 'source: kaggle'."
        )
    return wanted


def make_speaker(
    rng: np.random.Generator, conditions: Conditions, variants: tuple[str, ...], taken: set[str]
) -> Speaker:
    """A new speaker drawn from ``conditions`` (``variants``: its voice variants, all installed)."""
    # The order of the draws is that of the original demo, so that the mild demo is unchanged.
    c = conditions
    while (speaker_id := f"{rng.integers(0, 2**32):08x}") in taken:
        pass
    taken.add(speaker_id)
    base = rng.choice(c.accented_voices) if rng.random() < c.accented_share else rng.choice(c.english_voices)
    variant = rng.choice(variants)
    noisy = rng.random() < c.noisy_share
    pitch, speed = _draw(rng, c.pitch, integer=True), _draw(rng, c.speed, integer=True)
    highpass, lowpass = _draw(rng, c.highpass_hz), _draw(rng, c.lowpass_hz)
    reverb = _draw(rng, c.reverb_seconds) if rng.random() < c.reverb_share else 0.0
    noise_kind = str(rng.choice(c.noise_kinds))
    snr = _draw(rng, c.snr_db) if noisy else None
    level = float(rng.uniform(-30, -1))
    eq = tuple(
        (float(rng.uniform(300, 4000)), float(rng.choice((-1, 1)) * rng.uniform(6, 12))) for _ in range(c.eq_bands)
    )
    return Speaker(
        id=speaker_id,
        voice=f"{base}+{variant}" if variant else str(base),
        pitch=pitch,
        speed=speed,
        highpass_hz=highpass,
        lowpass_hz=lowpass,
        reverb_seconds=reverb,
        noise_kind=noise_kind,
        snr_db=snr,
        level_db=level,
        eq=eq,
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
    for centre_hz, gain_db in speaker.eq:  # a peaking band: the signal plus a scaled band-pass of itself
        b, a = signal.iirpeak(centre_hz, Q=2.0, fs=RATE)
        voice = voice + (10 ** (gain_db / 20) - 1) * signal.lfilter(b, a, voice)
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


def plan(size: DemoSize, seed: int, noise_dir: Path, shift: str = "mild") -> tuple[list[ClipJob], pd.DataFrame]:
    """All clips to render, and the hidden test solution. Pure: depends on the seed and the shift only."""
    conditions = SHIFTS[shift]
    rng = np.random.default_rng([seed, 0])
    train_variants = required_variants(conditions.train.variants)
    test_variants = required_variants(conditions.test.variants)
    taken: set[str] = set()
    jobs: list[ClipJob] = []

    # Train: every word gets the same number of speakers, so that no fold starves a class.
    word_deck: list[str] = []
    for index in range(size.train_speakers):
        speaker = make_speaker(rng, conditions.train, train_variants, taken)
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
                    ClipJob(
                        f"train/audio/{word}/{speaker.id}_nohash_{repeat}.wav",
                        word,
                        speaker,
                        (seed, 1, len(jobs)),
                        length,
                    )
                )

    # Test: unseen speakers from the shift's test conditions, in its label mix.
    mix = conditions.test_mix
    solution = []
    test_noise = noise_dir / "test_noise.npy"
    taken_clips: set[str] = set()
    for index in range(size.test_speakers):
        speaker = make_speaker(rng, conditions.test, test_variants, taken)
        for _ in range(size.test_clips_per_speaker):
            while (name := f"clip_{rng.integers(0, 16**9):09x}.wav") in taken_clips:
                pass
            taken_clips.add(name)
            draw = rng.random()
            if draw < mix.silence:
                word, label, clip_speaker = None, "silence", None
            elif draw < mix.silence + mix.commands:
                word = str(rng.choice(COMMANDS))
                label, clip_speaker = word, speaker
            else:
                word = str(rng.choice(UNSEEN_WORDS if rng.random() < mix.unseen_words else AUXILIARY_WORDS))
                label, clip_speaker = "unknown", speaker
            jobs.append(ClipJob(f"test/audio/{name}", word, clip_speaker, (seed, 2, len(jobs)), CLIP, str(test_noise)))
            usage = "Public" if rng.random() < 0.3 else "Private"
            solution.append((name, label, usage, word or "", speaker.id if clip_speaker else ""))
    solution_frame = pd.DataFrame(solution, columns=["fname", "label", "Usage", "word", "speaker"]).sort_values("fname")
    return jobs, solution_frame.reset_index(drop=True)


def write_noise(staging: Path, size: DemoSize, seed: int, noise_dir: Path, shift: str = "mild") -> None:
    """The six background recordings of train (and a separate pool of the test's noise kinds for test silence)."""
    folder = staging / "train" / "audio" / NOISE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for index, (name, kind) in enumerate(zip(NOISE_FILES, ("dishes", "miaow", "bike", "pink", "tap", "white"))):
        noise = make_noise(kind, size.noise_seconds, np.random.default_rng([seed, 3, index]))
        sf.write(folder / name, 0.5 * noise, RATE, subtype="PCM_16")
    (folder / "README.md").write_text(
        "Synthetic background noise of the wavefold demo competition, named like the real recordings.\n"
    )
    pool = [
        make_noise(kind, 10, np.random.default_rng([seed, 4, i]))
        for i, kind in enumerate(SHIFTS[shift].test.noise_kinds)
    ]
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


def generate(out_dir: Path, size_name: str, seed: int, workers: int = 1, shift: str = "mild") -> dict:
    """Write ``<competition>.zip`` (the three .7z archives) and ``solution.csv`` into ``out_dir``."""
    competition = SpeechChallenge.slug
    require_espeak()
    if size_name not in SIZES:
        raise ValueError(f"demo size {size_name!r} is not one of {sorted(SIZES)} (config key demo.size)")
    if shift not in SHIFTS:
        raise ValueError(f"demo shift {shift!r} is not one of {sorted(SHIFTS)} (config key demo.shift)")
    size = SIZES[size_name]
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".staging-") as tmp:
        staging = Path(tmp)
        write_noise(staging, size, seed, staging, shift)
        jobs, solution = plan(size, seed, staging, shift)
        log.info(
            "demo %s, shift %s (seed %d): %d clips to synthesise with %d workers",
            size_name,
            shift,
            seed,
            len(jobs),
            workers,
        )
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
        paths = [archive_dir / name for name in ARCHIVES] + [credits]
        archives.pack_competition_zip(paths, out_dir / f"{competition}.zip")
    solution.to_csv(out_dir / "solution.csv", index=False)
    counts = {
        "train_clips": len(train_paths),
        "train_speakers": size.train_speakers,
        "test_clips": len(solution),
        "shift": shift,
        "test_labels": solution["label"].value_counts().to_dict(),
        "zip_bytes": os.path.getsize(out_dir / f"{competition}.zip"),
        "espeak_ng": espeak_installation()[0],  # the voices follow from the seed for this version
    }
    log.info("demo written: %s", counts)
    return counts
