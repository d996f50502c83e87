"""A test clip as the audio cache holds it: int16 rows at the cache's rate and length, for the DAG's
cache and the notebook alike."""

from __future__ import annotations

import numpy as np

def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) to int16; exact for audio that was 16-bit to begin with."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def loudest_window(samples: np.ndarray, length: int) -> int:
    """Start of the window of ``length`` samples with the most energy (a word in a long recording)."""
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    window_energy = energy[length:] - energy[:-length]
    return int(np.argmax(window_energy))


def window_rows(samples: np.ndarray, clip: int, hop: int) -> np.ndarray:
    """A clip as (windows, clip) rows ``hop`` apart, the last ending at its end; one padded row if short."""
    if len(samples) <= clip:
        return np.pad(samples, (0, clip - len(samples)))[None]
    count = 1 + -(-(len(samples) - clip) // hop)
    starts = np.minimum(np.arange(count) * hop, len(samples) - clip)
    return samples[starts[:, None] + np.arange(clip)]


def clip_rows(path, audio: dict) -> np.ndarray:
    """A test clip as the audio cache holds it: int16 rows of ``audio['clip_samples']``; a clip the
    audio policy rejects, or that cannot be read, is one row of silence (the submission needs every clip)."""
    import soundfile as sf

    clip = audio["clip_samples"]
    silence = np.zeros((1, clip), np.int16)
    try:
        info = sf.info(str(path))
        samples, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception:  # undecodable: whatever the library raises
        return silence
    if info.format != "WAV" or len(samples) == 0:
        return silence
    if (info.channels != 1 and audio["multichannel"] == "reject") or (
        rate != audio["sample_rate"] and audio["other_rates"] == "reject"):  # fmt: skip
        return silence
    mono = samples.mean(axis=1)
    if rate != audio["sample_rate"]:
        import soxr

        mono = soxr.resample(mono, rate, audio["sample_rate"], quality="HQ")
    if len(mono) < clip:
        if audio["short"] == "reject":
            return silence
        mono = np.pad(mono, (0, clip - len(mono)))
    elif len(mono) > clip and audio["long"] != "windows":
        if audio["long"] == "reject":
            return silence
        start = loudest_window(mono, clip)
        mono = mono[start : start + clip]
    return window_rows(to_int16(mono), clip, audio["hop_samples"])


def shifted(wave, shift: int):
    """``wave`` (batch, samples) moved by ``shift`` samples along time, zero-filled (not wrapped round):
    the TTA shift. A numpy array or a torch tensor (on its device) alike: the workflow's predictions and
    the notebook's shift the same way."""
    if shift == 0:
        return wave
    out = wave * 0
    if shift > 0:
        out[:, shift:] = wave[:, :-shift]
    else:
        out[:, :shift] = wave[:, -shift:]
    return out
