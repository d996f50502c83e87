"""Probabilities of cached clips, streamed in batches, with test-time augmentation.

Out-of-fold and test probabilities are both made here, with the same shifts, so that what the
blend fits on the first (temperatures, weights, thresholds) transfers to the second.
"""

from __future__ import annotations

import numpy as np
import torch

from ..features import int16_to_float


def shifts_in_samples(shifts_ms, sample_rate: int) -> tuple[int, ...]:
    """TTA time shifts (milliseconds) as sample counts."""
    return tuple(int(round(ms * sample_rate / 1000)) for ms in shifts_ms)


def shifted(wave: torch.Tensor, shift: int) -> torch.Tensor:
    """``wave`` moved by ``shift`` samples along time, zero-filled (not wrapped round)."""
    out = torch.roll(wave, shift, dims=1)
    if shift > 0:
        out[:, :shift] = 0
    elif shift < 0:
        out[:, shift:] = 0
    return out


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
    """Softmax probabilities of cache ``rows`` (all rows when None) followed by ``extra`` int16 clips;
    averaged over the time ``shifts`` (samples) for test-time augmentation."""
    model.eval()
    n_rows = len(clips) if rows is None else len(rows)
    total = n_rows + (0 if extra is None else len(extra))
    out = []
    for begin in range(0, total, batch_size):
        index = np.arange(begin, min(total, begin + batch_size))
        in_rows = index[index < n_rows]
        parts = []
        if len(in_rows):
            parts.append(np.asarray(clips[in_rows if rows is None else rows[in_rows]]))
        if extra is not None and (index >= n_rows).any():
            parts.append(extra[index[index >= n_rows] - n_rows])
        wave = int16_to_float(torch.from_numpy(np.concatenate(parts)).to(device))
        probabilities = 0
        for shift in shifts:
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                probabilities = probabilities + torch.softmax(model(shifted(wave, shift)).float(), dim=1)
        out.append((probabilities / len(shifts)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))
