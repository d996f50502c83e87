"""Probabilities of cached clips, streamed in batches, with test-time augmentation.

Out-of-fold and test probabilities are both made here, with the same shifts, so that what the
blend fits on the first (temperatures, weights, thresholds) transfers to the second. A clip cached
as several windows (variable-length clips) gets the mean of its windows' probabilities.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..cache import ClipWindows, average_rows
from ..features import int16_to_float
from ..kernel.portable.audio import shifted  # the notebook's TTA shift, for tensors too
from ..memory import release_freed

#: Batches between two hand-backs of freed memory: often enough to hold a pass's memory flat,
#: seldom enough that re-touching the pages costs little (bench/malloc_threshold.py).
RELEASE_EVERY = 8


def shifts_in_samples(shifts_ms, sample_rate: int) -> tuple[int, ...]:
    """TTA time shifts (milliseconds) as sample counts."""
    return tuple(int(round(ms * sample_rate / 1000)) for ms in shifts_ms)


def _batches(clips, rows, extra, batch_size: int, device: torch.device, order: np.ndarray | None = None):
    """Float waveform batches of cache ``rows`` (all rows when None) followed by ``extra`` int16 clips,
    in that order or in ``order`` (positions in it), read from the memory map one batch at a time: the
    clips are never all in memory."""
    n_rows = len(clips) if rows is None else len(rows)
    total = n_rows + (0 if extra is None else len(extra))
    order = np.arange(total) if order is None else order
    for number, begin in enumerate(range(0, total, batch_size)):
        if number % RELEASE_EVERY == RELEASE_EVERY - 1:
            release_freed()  # or the heaps keep what earlier batches freed (wavefold.memory)
        index = order[begin : begin + batch_size]
        in_rows = np.sort(index[index < n_rows])  # a no-op in the plain order; else reads the map forward
        parts = []
        if len(in_rows):
            parts.append(np.asarray(clips[in_rows if rows is None else rows[in_rows]]))
        if extra is not None and (index >= n_rows).any():
            parts.append(extra[index[index >= n_rows] - n_rows])
        yield int16_to_float(torch.from_numpy(np.concatenate(parts)).to(device))


def batch_norm_layers(model) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def adapt_batch_norm(
    model,
    clips: np.ndarray,
    rows: np.ndarray | None,
    device: torch.device,
    batch_size: int,
    extra: np.ndarray | None = None,
    seed: int = 0,
) -> int:
    """AdaBN (Li et al., 2016): re-estimate every BatchNorm layer's statistics on the audio about to be
    predicted (cache ``rows`` and ``extra`` clips), labels unused; returns how many layers it set.

    Why: a test set recorded elsewhere shifts the activations' means and scales; normalising them by
    the test audio's own statistics takes that shift out before the classifier sees it. The clips go
    in a seeded random order, so that every batch mixes classes as the training batches did (a cache
    sorted by label would give within-class statistics). Each layer's estimate is the plain average
    over the batches (momentum None), not a running one weighted toward the last batches.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    n_rows = len(clips) if rows is None else len(rows)
    order = np.random.default_rng(seed).permutation(n_rows + (0 if extra is None else len(extra)))
    saved = [(m.momentum, m.training) for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for wave in _batches(clips, rows, extra, batch_size, device, order):
            if len(wave) > 1:  # a batch of one has no variance to measure
                with torch.autocast(device.type, enabled=device.type == "cuda"):
                    model(wave)
    finally:
        for m, (momentum, training) in zip(layers, saved):
            m.momentum = momentum
            m.train(training)
    return len(layers)


def _probabilities(model, logits: torch.Tensor) -> torch.Tensor:
    # A bare network (no Classifier around it) is a single-label one.
    return model.probabilities(logits) if hasattr(model, "probabilities") else torch.softmax(logits, dim=1)


@torch.no_grad()
def predict(
    model,
    clips: np.ndarray,
    rows: np.ndarray | None,
    device: torch.device,
    batch_size: int,
    extra: np.ndarray | None = None,
    shifts: tuple[int, ...] = (0,),
) -> np.ndarray:
    """Probabilities (softmax; a multi-label model's, sigmoids) of cache ``rows`` (all rows when None)
    followed by ``extra`` int16 clips; averaged over the time ``shifts`` (samples) for test-time augmentation."""
    model.eval()
    out = []
    for wave in _batches(clips, rows, extra, batch_size, device):
        probabilities = 0
        for shift in shifts:
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                probabilities = probabilities + _probabilities(model, model(shifted(wave, shift)).float())
        out.append((probabilities / len(shifts)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def predict_clips(
    model,
    clips: np.ndarray,
    windows: ClipWindows,
    clip_rows: np.ndarray,
    device: torch.device,
    batch_size: int,
    extra: np.ndarray | None = None,
    shifts: tuple[int, ...] = (0,),
) -> np.ndarray:
    """:func:`predict` for clips (``clip_rows``: clip numbers, each with its ``windows`` rows in the
    cache) followed by ``extra`` int16 clips: one row per clip, the mean over its windows (sliding
    windows over a long clip); with one row per clip, exactly :func:`predict`'s."""
    rows, owner = windows.all_rows(clip_rows)
    probabilities = predict(model, clips, rows, device, batch_size, extra, shifts)
    n_extra = 0 if extra is None else len(extra)
    owner = np.concatenate([owner, len(clip_rows) + np.arange(n_extra)])
    return average_rows(probabilities, owner, len(clip_rows) + n_extra)
