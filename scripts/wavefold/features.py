"""Features on the training device (torchaudio): log-mel, MFCC, or the raw waveform for 1-D models.

The cache holds int16 samples; a batch goes to the device as int16 (half the bytes of float32
over PCIe) and becomes float and features there, so the CPU never touches a spectrogram.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from .settings.training import FeatureSettings


def int16_to_float(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 32768.0


class FrontEnd(nn.Module):
    """(batch, samples) float waveform -> the input of a model of the given kind."""

    def __init__(self, kind: str, settings: FeatureSettings = FeatureSettings()):
        super().__init__()
        self.kind, self.settings = kind, settings
        self.exportable = False  # True: PCEN's smoother as a matrix product, which ONNX can express
        win = int(settings.sample_rate * settings.window_ms / 1000)
        hop = self.hop = int(settings.sample_rate * settings.hop_ms / 1000)
        n_fft = 1 << (win - 1).bit_length()
        mel = dict(n_fft=n_fft, win_length=win, hop_length=hop, f_min=settings.f_min, f_max=settings.f_max,
                   n_mels=settings.n_mels, center=True, power=2.0)  # fmt: skip
        if kind == "logmel":
            self.transform = torchaudio.transforms.MelSpectrogram(sample_rate=settings.sample_rate, **mel)
        elif kind == "mfcc":
            self.transform = torchaudio.transforms.MFCC(
                sample_rate=settings.sample_rate, n_mfcc=settings.n_mfcc, log_mels=True, melkwargs=mel
            )
        elif kind == "waveform":
            self.transform = None
        else:
            raise ValueError(f"unknown input kind {kind!r}")

    @property
    def spectrum(self) -> dict | None:
        """The power spectrum a spectral front end starts from, as torch.stft makes it (a centred,
        reflect-padded periodic Hann window of ``win`` samples in an ``n_fft`` frame, every ``hop``);
        None for a waveform model. An exported graph starts after it: the notebook computes it with
        numpy's FFT (portable.spectrum), once for every model that shares it."""
        if self.transform is None:
            return None
        stft = self._spectrogram()
        return {"n_fft": stft.n_fft, "hop": stft.hop_length, "win": stft.win_length}

    def _spectrogram(self) -> torchaudio.transforms.Spectrogram:
        mel = self.transform.MelSpectrogram if self.kind == "mfcc" else self.transform
        return mel.spectrogram

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, n_fft // 2 + 1, frames) power spectrum (float32 under autocast too)."""
        with torch.autocast(device_type=wave.device.type, enabled=False):
            return self._spectrogram()(wave.float())

    def from_power(self, power: torch.Tensor) -> torch.Tensor:
        """The rest of a spectral front end: mel bands, compression (log or PCEN) or MFCC, normalisation.
        What torchaudio's MelSpectrogram and MFCC do after their spectrogram, step for step."""
        # In float32 even under autocast: the log of tiny powers needs the range.
        with torch.autocast(device_type=power.device.type, enabled=False):
            if self.kind == "mfcc":
                mfcc = self.transform
                mel = torch.log(mfcc.MelSpectrogram.mel_scale(power) + 1e-6)  # MFCC's log_mels offset
                x = torch.matmul(mel.transpose(-1, -2), mfcc.dct_mat).transpose(-1, -2)
            else:
                x = self.transform.mel_scale(power)
                if self.settings.compression == "pcen":
                    x = pcen(x, self.settings.sample_rate / self.hop, by_matrix=self.exportable)
                else:
                    x = torch.log(x + 1e-6)
        return normalise(x.unsqueeze(1), self.settings.normalise)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.transform is None:
            return normalise(wave.unsqueeze(1), self.settings.normalise)
        return self.from_power(self.power(wave))


#: PCEN's constants: librosa.pcen's defaults (tests/test_models.py checks the two agree).
PCEN_GAIN, PCEN_BIAS, PCEN_POWER, PCEN_SECONDS, PCEN_EPS = 0.98, 2.0, 0.5, 0.4, 1e-6
#: librosa's advice for audio in [-1, 1]: scale the power up to the range of 32-bit integers first, so
#: that the small epsilon does not dominate quiet bands.
PCEN_SCALE = 2.0**31


def pcen(mel_power: torch.Tensor, frames_per_second: float, by_matrix: bool = False) -> torch.Tensor:
    """Per-channel energy normalisation of (batch, bands, frames) mel power, as librosa.pcen computes it.

    Each band is divided by a smoothed copy of itself (a one-pole low-pass over time) raised to
    PCEN_GAIN, then root-compressed: a per-band automatic gain control that flattens stationary noise
    and a device's level and response. librosa works on NumPy arrays on the CPU; this is the same on
    the device, with torchaudio's IIR filter. One difference: the smoother starts settled at the clip's
    first frame (librosa computes the same given that initial state, ``zi``); librosa's default state
    is that of an input of 1, which in a 1-s clip leaves a transient over its first ~0.4 s.

    ``by_matrix``: the same one-pole filter as a product with its (frames, frames) impulse-response
    matrix — what an exported ONNX graph computes (torchaudio's lfilter has no ONNX form); equal to
    rounding, and cheap at a clip's ~100 frames."""
    s = PCEN_SCALE * mel_power
    t = PCEN_SECONDS * frames_per_second
    b = (math.sqrt(1 + 4 * t**2) - 1) / (2 * t**2)  # librosa's smoothing coefficient for that time constant
    a_coeffs = torch.tensor([1.0, b - 1.0], dtype=s.dtype, device=s.device)
    b_coeffs = torch.tensor([b, 0.0], dtype=s.dtype, device=s.device)
    first = s[..., :1]
    # The filter has unit gain at DC: filtering s - first and adding first back starts it settled there.
    if by_matrix:  # y[t] = b x[t] + (1 - b) y[t-1]: y = x @ R, R[k, t] = b (1 - b)^(t - k) for t >= k
        frames = s.shape[-1]
        lag = torch.arange(frames, device=s.device)[None, :] - torch.arange(frames, device=s.device)[:, None]
        response = torch.where(lag >= 0, b * (1 - b) ** lag.clamp(min=0).to(s.dtype), torch.zeros((), dtype=s.dtype))
        smooth = (s - first) @ response + first
    else:
        smooth = torchaudio.functional.lfilter(s - first, a_coeffs, b_coeffs, clamp=False) + first
    smooth = torch.exp(-PCEN_GAIN * (math.log(PCEN_EPS) + torch.log1p(smooth / PCEN_EPS)))
    return (s * smooth + PCEN_BIAS) ** PCEN_POWER - PCEN_BIAS**PCEN_POWER


def normalise(x: torch.Tensor, how: str) -> torch.Tensor:
    """Per-clip normalisation of (batch, 1, ...) features.

    instance: zero mean and unit variance over the whole clip (a recording's level drops out).
    band: first each band's (or cepstral coefficient's) own mean over the clip's frames is removed,
      then the clip is scaled to unit variance. A recording device's frequency response (band limits,
      EQ) multiplies each band's power by a constant: in log-mel or MFCC features it is a constant
      offset per band, which this removes (cepstral mean normalisation). Only the mean per band, not
      the variance: scaling a band a device cut off to unit variance would amplify its noise floor.
      On a waveform (no bands) it is the same as instance.
    none: as computed."""
    if how == "none":
        return x
    dims = tuple(range(2, x.dim()))
    if how == "band" and x.dim() == 4:
        x = x - x.mean(dim=3, keepdim=True)  # (batch, 1, bands, frames): each band over its frames
    elif how not in ("instance", "band"):
        raise ValueError(f"features.normalise: unknown value {how!r}; known: instance, band, none")
    return (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + 1e-5)
