"""The audio cache: every clip decoded once into an int16 ``.npy`` that training opens memory-mapped.

``train.npy`` and ``test.npy`` have shape (clips, samples) in the row order of the index's
manifests; ``noise.npy`` is all background recordings end to end, located by ``start``/``length``
in the noise manifest. Arrays are written through ``numpy.lib.format.open_memmap``, row by row, so
neither writing nor reading ever needs a whole split in memory (the real test set is ~5 GB).
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .audio import AudioPolicy, conform
from .errors import ExplainedError

log = logging.getLogger(__name__)


def _decode(path: Path, policy: AudioPolicy) -> np.ndarray:
    samples, _report = conform(path, policy)
    return np.zeros(policy.clip_samples, np.int16) if samples is None else samples


class DiskFull(ExplainedError, OSError):
    """Not enough free space for an output whose size is known before it is written."""


def _size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def ensure_free_space(folder: Path, needed: int, what: str, margin: float = 1.05) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` when the disk cannot hold them: a
    memory-mapped write that runs out of space dies with SIGBUS and an empty log."""
    free = shutil.disk_usage(folder).free
    if free < needed * margin:
        raise DiskFull(
            f"{what} needs {_size(needed)} in {folder}, but only {_size(free)} is free. "
            f"Free some space there (or run the workflow from a folder on a larger disk) and run it again."
        )


def write_clips(root: Path, relative_paths: list[str], out: Path, policy: AudioPolicy, workers: int, desc: str) -> None:
    """Decode clips into a (len(paths), clip_samples) int16 .npy, in order; unreadable clips become zeros."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial_out = out.with_name(out.stem + ".partial.npy")
    partial_out.unlink(missing_ok=True)  # left by a killed run
    ensure_free_space(out.parent, len(relative_paths) * policy.clip_samples * 2 + 128, f"the audio cache {out.name}")
    array = np.lib.format.open_memmap(partial_out, mode="w+", dtype=np.int16, shape=(len(relative_paths), policy.clip_samples))
    paths = [root / p for p in relative_paths]
    decode = partial(_decode, policy=policy)
    if workers <= 1 or len(paths) < 512:
        rows = map(decode, paths)
        for i, row in enumerate(tqdm(rows, total=len(paths), desc=desc, mininterval=10)):
            array[i] = row
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = pool.map(decode, paths, chunksize=256)
            for i, row in enumerate(tqdm(rows, total=len(paths), desc=desc, mininterval=10)):
                array[i] = row
    array.flush()
    del array
    partial_out.replace(out)
    log.info("%s: %d clips, %.1f MB", out, len(paths), out.stat().st_size / 1e6)


def write_noise(root: Path, noise: pd.DataFrame, out: Path, policy: AudioPolicy) -> pd.DataFrame:
    """Concatenate the background recordings into one int16 .npy; returns the manifest with start/length."""
    pieces = []
    for path in noise["path"]:
        samples, _report = conform(root / path, policy, fixed_length=False)
        pieces.append(samples)
    lengths = [len(p) for p in pieces]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int) if pieces else []
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, np.concatenate(pieces) if pieces else np.zeros(0, np.int16))
    table = noise[["name"]].copy()
    table["start"], table["length"] = starts, lengths
    log.info("%s: %d recordings, %.1f s", out, len(pieces), sum(lengths) / policy.sample_rate)
    return table


def open_clips(path: Path) -> np.ndarray:
    """A cached split, memory-mapped read-only: rows are loaded only when touched."""
    return np.load(path, mmap_mode="r")
