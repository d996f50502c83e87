"""A small, easy task for in-process training tests: clips of one of four tone bursts in noise.

Each class is a burst of a pure tone in its own mel band (300, 700, 1500, 3100 Hz), 80 ms long at a
random time, phase and level, over a little white noise; a quarter of a second at 16 kHz. A burst,
not a steady tone: the features remove each band's mean over the clip (``normalise: band``), which
would wipe a steady tone out. Any architecture that learns at all tells them apart within a few
epochs, so a model stuck at chance (1/4) or a loss that does not fall is a broken loop.
The folds, silence and noise tables are laid out as the folds step writes them, so the data goes
through the real :func:`wavefold.training.data.load_fold`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wavefold.competitions import LabelSpace
from wavefold.training.data import FoldData, load_fold
from wavefold.training.outputs import JobPaths

RATE = 16000
SAMPLES = RATE // 4
BURST = int(0.08 * RATE)
CLASSES = ("low", "mid", "high", "top")
FREQUENCIES = (300.0, 700.0, 1500.0, 3100.0)
SPACE = LabelSpace("tones", CLASSES, CLASSES, CLASSES)


@dataclass
class Tones:
    clips: np.ndarray  # (clips, samples) int16
    noise: np.ndarray  # (samples,) int16
    folds: pd.DataFrame
    silence: pd.DataFrame
    segments: pd.DataFrame

    def fold(self, fold: int = 0, **kwargs) -> FoldData:
        return load_fold(self.clips, self.noise, self.folds, self.silence, self.segments, fold, SPACE, **kwargs)


def tones(per_class: int = 40, n_folds: int = 2, seed: int = 0) -> Tones:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    t = np.arange(BURST) / RATE
    waves = []
    for c in labels:
        wave = rng.normal(0, 0.01, SAMPLES)
        start = rng.integers(0, SAMPLES - BURST)
        level = 10 ** (rng.uniform(-20, -3) / 20)
        wave[start : start + BURST] += level * np.hanning(BURST) * np.sin(2 * np.pi * FREQUENCIES[c] * t
                                                                           + rng.uniform(0, 2 * np.pi))
        waves.append(wave)
    clips = (np.clip(np.stack(waves), -1, 1) * 32767).astype(np.int16)
    groups = [f"g{i // 2:04d}" for i in range(len(labels))]  # two clips a "speaker"
    # Shuffled from a sorted list: a set's order changes with Python's string hashing, every process.
    fold_of_group = {g: k % n_folds for k, g in enumerate(rng.permutation(sorted(set(groups))))}
    folds = pd.DataFrame({"id": [f"{CLASSES[c]}/{i:04d}.wav" for i, c in enumerate(labels)],
                          "target": [CLASSES[c] for c in labels], "label": [CLASSES[c] for c in labels],
                          "group": groups, "windows": 1, "fold": [fold_of_group[g] for g in groups],
                          "scored": True})  # fmt: skip
    noise = (rng.normal(0, 0.01, RATE * n_folds) * 32767).astype(np.int16)
    segments = pd.DataFrame({"name": "white.wav", "fold": range(n_folds), "start": [k * RATE for k in range(n_folds)],
                             "length": RATE})  # fmt: skip
    silence = pd.DataFrame(columns=["id", "fold", "noise", "start", "gain", "label"])
    return Tones(clips, noise, folds, silence, segments)


def job_paths(folder: Path) -> JobPaths:
    folder.mkdir(parents=True, exist_ok=True)
    return JobPaths(folder / "model.pt", folder / "oof.csv", folder / "curve.csv", folder / "metrics.csv",
                    folder / "checkpoint" / "last.pt")  # fmt: skip
