"""Fixtures of broken audio, each with the outcome the documented policy promises for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def _tone(seconds: float, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


# name -> (problem kinds found, rejected?)
EXPECTED = {
    "truncated": ({"truncated", "short"}, False),
    "empty": ({"empty"}, True),
    "stereo": ({"channels"}, False),
    "rate8k": ({"sample_rate"}, False),
    "depth24": ({"bit_depth"}, False),
    "notwav": ({"undecodable"}, True),
    "flac": ({"not_wav"}, True),
    "long": ({"long"}, False),
    "short": ({"short"}, False),
}


def clip_name(case: str) -> str:
    """A training-set name for a case: speaker 0badbad0, the case's position as repeat number."""
    return f"0badbad0_nohash_{list(EXPECTED).index(case)}.wav"


def write_bad_clips(folder: Path, dataset_names: bool = False) -> dict[str, Path]:
    """Write one file per case of :data:`EXPECTED` into ``folder``; returns case -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {case: folder / (clip_name(case) if dataset_names else f"{case}.wav") for case in EXPECTED}
    sf.write(paths["truncated"], _tone(1.0), RATE, subtype="PCM_16")
    data = paths["truncated"].read_bytes()
    paths["truncated"].write_bytes(data[: len(data) // 2])
    sf.write(paths["empty"], np.zeros(0), RATE, subtype="PCM_16")
    sf.write(paths["stereo"], _tone(1.0, channels=2), RATE, subtype="PCM_16")
    sf.write(paths["rate8k"], _tone(1.0, rate=8000), 8000, subtype="PCM_16")
    sf.write(paths["depth24"], _tone(1.0), RATE, subtype="PCM_24")
    paths["notwav"].write_text("this is not audio at all\n")
    sf.write(paths["flac"], _tone(1.0), RATE, format="FLAC")
    long = np.zeros(int(1.5 * RATE))
    long[20000:21000] = 0.5  # the loud part sits in the second half
    sf.write(paths["long"], long, RATE, subtype="PCM_16")
    sf.write(paths["short"], _tone(0.6), RATE, subtype="PCM_16")
    return paths
