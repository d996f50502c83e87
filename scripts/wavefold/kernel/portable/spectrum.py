"""The power spectrum a spectral model starts from, with numpy's FFT: what torch.stft computes (and
torchaudio's Spectrogram, power 2) for the notebook's numpy.

Why not in the ONNX graph: onnxruntime's STFT operator took half of each graph's time on the CPU
(1.2-1.7 ms of ~2.5-3 ms a clip for the demo's models), numpy's FFT a tenth of that; and out of the
graph, one spectrum serves every model that shares its settings (every fold of every member, as a
rule), where each graph computed its own.
"""

from __future__ import annotations

import numpy as np


def hann_window(length: int) -> np.ndarray:
    """torch.hann_window(length): the periodic Hann window."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


def power_spectrogram(wave: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """(batch, samples) float32 waveforms -> (batch, n_fft // 2 + 1, frames) float32 power spectra:
    centred frames (reflect-padded by n_fft // 2 at both ends) every ``hop`` samples, a Hann window of
    ``win`` samples in the middle of each ``n_fft`` frame, |rfft|^2. SciPy's FFT where the image has
    it (Kaggle's has: in float32, 3.5x numpy's here), numpy's otherwise: the same to float32 rounding."""
    try:
        from scipy.fft import rfft
    except ImportError:
        from numpy.fft import rfft
    window = np.zeros(n_fft, np.float32)
    left = (n_fft - win) // 2
    window[left : left + win] = hann_window(win)
    padded = np.pad(np.asarray(wave, np.float32), ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop]  # a view: no copy
    spectrum = rfft(frames * window, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return np.ascontiguousarray(power.transpose(0, 2, 1), dtype=np.float32)


def inputs_of(wave: np.ndarray, kinds: list[dict]) -> list[np.ndarray]:
    """Each graph's input for one batch: the waveform, or its power spectrum — computed once for all
    the graphs that ask for the same one. ``kinds``: each graph's ``input`` of the recipe."""
    made: dict[tuple, np.ndarray] = {}
    out = []
    for kind in kinds:
        if kind["kind"] == "wave":
            out.append(wave)
            continue
        key = (kind["n_fft"], kind["hop"], kind["win"])
        if key not in made:
            made[key] = power_spectrogram(wave, *key)
        out.append(made[key])
    return out
