"""Batches from the memory-mapped caches, gathered on a background thread while the device works."""

from __future__ import annotations

import queue
import threading

import numpy as np
import torch

from .sources import SILENCE, Sources


def _rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]``, read in ascending row order (the memory map's fast path), returned in ``rows`` order."""
    order = np.argsort(rows, kind="stable")
    placed = np.empty((len(rows), array.shape[1]), dtype=array.dtype)
    placed[order] = array[rows[order]]
    return placed


def gather(
    clips: np.ndarray,
    noise: np.ndarray,
    source: np.ndarray,
    start: np.ndarray,
    gain: np.ndarray,
    samples: int,
    variants: np.ndarray | None = None,
    test_clips: np.ndarray | None = None,
) -> np.ndarray:
    """A batch of int16 clips: ``source`` addresses rows of ``clips``, ``variants`` and ``test_clips`` in
    turn (:mod:`.sources`), and noise windows at ``start`` scaled by ``gain`` (silence)."""
    batch = np.empty((len(source), samples), dtype=np.int16)
    parts = Sources(len(clips), 0 if variants is None else len(variants)).parts(source)
    for part, array in ((parts.clip, clips), (parts.variant, variants), (parts.test, test_clips)):
        if part.any():
            batch[part.mask] = _rows(array, part.index)
    is_noise = parts.silence
    if is_noise.any():
        windows = noise[start[is_noise, None] + np.arange(samples)]
        batch[is_noise] = (windows * gain[is_noise, None]).astype(np.int16)
    return batch


def silence_windows(noise: np.ndarray, starts: np.ndarray, gains: np.ndarray, samples: int) -> np.ndarray:
    """Silence examples (windows of the noise cache at ``starts``, scaled by ``gains``) as int16 clips."""
    nothing = np.zeros((0, samples), np.int16)
    return gather(nothing, noise, np.full(len(starts), SILENCE), np.asarray(starts), np.asarray(gains), samples)


class Prefetcher:
    """Gathers the next batches on a background thread (numpy releases the GIL while copying)."""

    def __init__(self, make_batch, count: int, pin: bool, depth: int = 3):
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.count = count

        def work():
            try:
                for i in range(count):
                    tensor = torch.from_numpy(make_batch(i))
                    self.queue.put(tensor.pin_memory() if pin else tensor)
            except BaseException as error:  # surfaced in the training thread
                self.queue.put(error)

        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def __iter__(self):
        for _ in range(self.count):
            item = self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
