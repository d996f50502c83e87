"""The audio cache: every clip decoded once into an int16 ``.npy`` that training opens memory-mapped.

``train.npy`` and ``test.npy`` have shape (rows, samples), in the row order of the index's
manifests: one row per clip, or, under the audio policy ``long: windows`` (competitions of
variable-length clips), each clip's ``windows`` consecutive rows (:class:`ClipWindows` finds
them: training draws one of a clip's windows each time, a random crop; prediction averages over
all of them, sliding windows). ``noise.npy`` is all background recordings end to end, located by
``start``/``length`` in the noise manifest. Arrays are written as a stream (the .npy header, then the rows in order),
and read memory-mapped (training's random access) or with plain file reads (:class:`RowReader`,
prediction's pass in order), so neither writing nor reading ever holds a whole split in the
process's memory (the real test set is ~5 GB): a writable memory map would keep every page it
wrote resident until the end, and a read-only one every page it read.
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
    """A clip's cache rows: (windows, clip_samples); one row of zeros for an unreadable clip."""
    samples, _report = conform(path, policy)
    return np.zeros((1, policy.clip_samples), np.int16) if samples is None else policy.windows(samples)


class ClipWindows:
    """Where each clip's rows are in a cache: clip ``i`` has ``counts[i]`` consecutive rows from
    ``first[i]``. All vectorised: no per-clip Python in the training loop."""

    def __init__(self, counts):
        self.counts = np.asarray(counts, dtype=np.int64)
        self.first = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.single = bool((self.counts == 1).all())  # one row per clip: rows are clip numbers

    @classmethod
    def one_each(cls, count: int) -> "ClipWindows":
        """``count`` clips of one row each: rows are clip numbers."""
        return cls(np.ones(count, np.int64))

    @classmethod
    def of_manifest(cls, table: pd.DataFrame) -> "ClipWindows":
        """From a manifest's (or the folds table's) ``windows`` column; one row each without it."""
        return cls(table["windows"].to_numpy()) if "windows" in table.columns else cls.one_each(len(table))

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def random_rows(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One row of each of ``clips``, drawn uniformly among its windows: a random crop."""
        clips = np.asarray(clips, dtype=np.int64)
        if self.single:
            return clips
        return self.first[clips] + (rng.random(len(clips)) * self.counts[clips]).astype(np.int64)

    def all_rows(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every row of ``clips`` and, for each row, the position in ``clips`` of the clip it belongs to."""
        clips = np.asarray(clips, dtype=np.int64)
        if self.single:
            return clips, np.arange(len(clips))
        counts = self.counts[clips]
        owner = np.repeat(np.arange(len(clips)), counts)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        return self.first[clips][owner] + offset, owner

    def clip_of(self, rows: np.ndarray) -> np.ndarray:
        """The clip each cache row belongs to."""
        rows = np.asarray(rows, dtype=np.int64)
        return rows if self.single else np.searchsorted(self.first, rows, side="right") - 1


def average_rows(values: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Per-row ``values`` averaged into ``count`` clips (``owner``: each row's clip): sliding windows."""
    if len(owner) == count and (owner == np.arange(count)).all():
        return values
    out = np.zeros((count, values.shape[1]), dtype=np.float64)
    np.add.at(out, owner, values)
    return out / np.bincount(owner, minlength=count)[:, None]


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


def write_clips(root: Path, relative_paths: list[str], out: Path, policy: AudioPolicy, workers: int, desc: str,
                windows: ClipWindows | None = None) -> None:  # fmt: skip
    """Decode clips into an int16 .npy of (rows, clip_samples), in order: each clip's ``windows`` rows
    (one each when None), as the index counted them. Unreadable clips become a row of zeros."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial_out = out.with_name(out.stem + ".partial.npy")
    partial_out.unlink(missing_ok=True)  # left by a killed run
    windows = windows or ClipWindows.one_each(len(relative_paths))
    shape = (windows.rows, policy.clip_samples)
    ensure_free_space(out.parent, shape[0] * shape[1] * 2 + 128, f"the audio cache {out.name}")
    paths = [root / p for p in relative_paths]
    decode = partial(_decode, policy=policy)

    def store(decoded, stream):
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int16)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(stream, header)
        for i, rows in enumerate(tqdm(decoded, total=len(paths), desc=desc, mininterval=10)):
            if len(rows) != windows.counts[i]:
                raise RuntimeError(f"{paths[i]} decodes to {len(rows)} windows where the index counted "
                                   f"{windows.counts[i]}: the file changed after indexing; run the index step again")  # fmt: skip
            stream.write(np.ascontiguousarray(rows, dtype="<i2").tobytes())  # in order: row i follows row i-1

    with open(partial_out, "wb") as stream:
        if workers <= 1 or len(paths) < 512:
            store(map(decode, paths), stream)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                store(pool.map(decode, paths, chunksize=256), stream)
    partial_out.replace(out)
    log.info("%s: %d clips in %d rows, %.1f MB", out, len(paths), shape[0], out.stat().st_size / 1e6)


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


class RowReader:
    """Rows of a cached split read with plain file reads, a run of consecutive rows at a time: for a
    pass over many rows in order (test prediction), where a memory map would keep every row it
    touched resident in the process. ``reader[rows]`` is ``np.load(path)[rows]``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with open(self.path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            self.shape, fortran_order, self.dtype = read_header[version](stream)
            self.offset = stream.tell()
        if fortran_order or len(self.shape) != 2:
            raise ValueError(f"{self.path}: not a cache of rows (shape {self.shape})")
        self.row_bytes = self.shape[1] * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        with open(self.path, "rb") as stream:
            at = 0
            for run in np.split(ordered, breaks) if len(ordered) else []:
                stream.seek(self.offset + int(run[0]) * self.row_bytes)
                data = np.fromfile(stream, dtype=self.dtype, count=len(run) * self.shape[1])
                out[order[at : at + len(run)]] = data.reshape(len(run), self.shape[1])
                at += len(run)
        return out
