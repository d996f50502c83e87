"""Offline augmentation: variants too slow to make on the device every epoch (speed, pitch, stretch).

Each training clip gets ``variants_per_clip`` variants, each one randomly a speed change (resampling:
tempo and pitch together), a pitch shift or a time stretch (librosa's phase vocoder), with its
factor drawn from the configured range, then brought back to the clip length (the loudest window,
or zero padding at the end). They are cached beside the audio as ``augmented.npy`` with a table
of their source rows; a variant belongs to its source clip's fold, and training only ever draws
the variants of its own training side (:func:`wavefold.training.load_fold`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .audio import loudest_window, to_int16
from .cache import ensure_free_space
from .settings import from_section

log = logging.getLogger(__name__)

KINDS = ("speed", "pitch", "stretch")


@dataclass(frozen=True)
class OfflineSettings:
    variants_per_clip: int = 1
    kinds: tuple[str, ...] = KINDS
    speed: tuple[float, float] = (0.9, 1.1)  # playback-rate factor
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    stretch: tuple[float, float] = (0.85, 1.15)  # tempo factor, pitch kept

    @classmethod
    def from_config(cls, settings: dict) -> "OfflineSettings":
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        bad = set(values.get("kinds", ())) - set(KINDS)
        if bad:
            raise ValueError(f"offline_augment.kinds has {sorted(bad)}; choose from {list(KINDS)}")
        return from_section(cls, values, "offline_augment")


def plan_variants(n_clips: int, settings: OfflineSettings, seed: int) -> pd.DataFrame:
    """Which variant of which clip: source row, kind and factor. Depends on the seed only."""
    rng = np.random.default_rng([seed, 11])
    source = np.repeat(np.arange(n_clips), settings.variants_per_clip)
    kinds = rng.choice(settings.kinds, size=len(source)) if len(settings.kinds) else np.array([], dtype=str)
    ranges = {"speed": settings.speed, "pitch": settings.pitch_semitones, "stretch": settings.stretch}
    factor = np.array([rng.uniform(*ranges[k]) for k in kinds])
    return pd.DataFrame({"source_row": source, "kind": kinds, "factor": np.round(factor, 4)})


def make_variant(clip: np.ndarray, kind: str, factor: float, sample_rate: int) -> np.ndarray:
    """One variant of an int16 clip, as int16 of the same length."""
    import librosa
    import soxr

    wave = clip.astype(np.float32) / 32768.0
    if kind == "speed":  # played faster or slower: resample, then read at the original rate
        out = soxr.resample(wave, sample_rate * factor, sample_rate)
    elif kind == "pitch":
        out = librosa.effects.pitch_shift(wave, sr=sample_rate, n_steps=factor)
    elif kind == "stretch":
        out = librosa.effects.time_stretch(wave, rate=factor)
    else:
        raise ValueError(f"unknown variant kind {kind!r}")
    length = len(clip)
    if len(out) > length:
        start = loudest_window(out, length)
        out = out[start : start + length]
    else:
        out = np.pad(out, (0, length - len(out)))
    return to_int16(out)


def _variant(job, clips_path: str, sample_rate: int) -> np.ndarray:
    row, kind, factor = job
    clips = np.load(clips_path, mmap_mode="r")
    return make_variant(np.asarray(clips[row]), kind, factor, sample_rate)


def write_variants(clips_path: str, plan: pd.DataFrame, out_path: str, sample_rate: int, workers: int) -> None:
    """Render every planned variant into an int16 .npy, in plan order, without holding them all in memory."""
    samples = np.load(clips_path, mmap_mode="r").shape[1]
    ensure_free_space(Path(out_path).parent, len(plan) * samples * 2 + 128, f"the offline variants {Path(out_path).name}")
    array = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.int16, shape=(len(plan), samples))
    jobs = list(zip(plan["source_row"], plan["kind"], plan["factor"]))
    render = partial(_variant, clips_path=clips_path, sample_rate=sample_rate)

    def fill(results):
        for i, variant in enumerate(tqdm(results, total=len(jobs), desc="offline variants", mininterval=10)):
            array[i] = variant

    if workers <= 1 or len(jobs) < 64:
        fill(map(render, jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            fill(pool.map(render, jobs, chunksize=32))
    array.flush()
    log.info("%d variants (%s)", len(plan), plan["kind"].value_counts().to_dict() if len(plan) else {})
