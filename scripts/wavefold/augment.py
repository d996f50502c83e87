"""Augmentation on the training device: whole batches at once, no Python per clip, all seeded.

Waveform stage (before features): random time shift, a random room (reverberation by a synthetic
impulse response), random gain, background noise at a random SNR (noise from the fold's own
training side only), a random recording device (band limits and peaking EQ). The room and the
device are what a test set recorded elsewhere differs by most; a model that never heard them sends
such clips to "unknown" (docs/demo.md, the hard shift). Feature stage: SpecAugment time and frequency
masks. Label stage: mixup. Everything is off at validation and test time (the caller simply does
not call these). Every random draw takes an explicit ``torch.Generator``, so a job's augmentation
depends on its seed only, not on what else ran in the process.
"""

from __future__ import annotations

import numpy as np
import torch

from .settings.training import AugmentSettings


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def time_shift(wave: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each clip by its own random number of samples in [-max_shift, max_shift], zero-filled."""
    if max_shift <= 0:
        return wave
    batch, samples = wave.shape
    shift = torch.randint(-max_shift, max_shift + 1, (batch, 1), generator=generator, device=wave.device)
    source = torch.arange(samples, device=wave.device).unsqueeze(0) - shift
    inside = (source >= 0) & (source < samples)
    return torch.gather(wave, 1, source.clamp(0, samples - 1)) * inside


def random_gain(wave: torch.Tensor, gain_db: float, generator: torch.Generator) -> torch.Tensor:
    if gain_db <= 0:
        return wave
    db = _uniform(wave.shape[0], -gain_db, gain_db, generator, wave.device)
    return wave * (10 ** (db / 20)).unsqueeze(1)


def noise_windows(noise: torch.Tensor, count: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random windows of ``samples`` from a 1-D noise tensor (already on the device)."""
    starts = torch.randint(0, len(noise) - samples + 1, (count, 1), generator=generator, device=noise.device)
    return noise[starts + torch.arange(samples, device=noise.device)]


def add_noise(
    wave: torch.Tensor, noise: torch.Tensor, settings: AugmentSettings, generator: torch.Generator
) -> torch.Tensor:
    """Mix background noise into a random share of clips at an SNR drawn in [snr_db_min, snr_db_max].

    Clips with (almost) no signal, i.e. silence examples, get the noise at a random level instead.
    """
    batch, samples = wave.shape
    if settings.noise_probability <= 0 or len(noise) < samples:
        return wave
    windows = noise_windows(noise, batch, samples, generator).to(wave.dtype)
    snr = _uniform(batch, settings.snr_db_min, settings.snr_db_max, generator, wave.device)
    signal_power = wave.pow(2).mean(1)
    noise_power = windows.pow(2).mean(1).clamp_min(1e-10)
    scale = torch.sqrt(signal_power / noise_power / 10 ** (snr / 10))
    quiet = signal_power < 1e-8
    scale = torch.where(quiet, _uniform(batch, 0.0, 0.3, generator, wave.device), scale)
    chosen = torch.rand(batch, generator=generator, device=wave.device) < settings.noise_probability
    return wave + windows * (scale * chosen).unsqueeze(1)


def channel_response_db(frequencies: torch.Tensor, batch: int, settings: AugmentSettings, nyquist: float,
                        generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """(batch, frequencies) magnitude responses in dB of random devices: a low-pass with its cutoff in
    [lowpass_hz_min, nyquist] and a high-pass with its cutoff in [20, highpass_hz_max] (24 dB per
    octave beyond each), plus ``eq_bands`` peaking bands of +-``eq_db`` at 200 Hz-6 kHz (log-uniform
    centres, 0.3-1.5 octaves wide)."""
    device = frequencies.device
    octaves = torch.log2(frequencies.clamp_min(1.0)).unsqueeze(0)  # (1, F)
    low_cut = _uniform(batch, np.log2(settings.lowpass_hz_min), np.log2(nyquist), generator, device).unsqueeze(1)
    high_cut = _uniform(batch, np.log2(20.0), np.log2(max(settings.highpass_hz_max, 21.0)), generator, device)
    response = -24.0 * ((octaves - low_cut).clamp_min(0) + (high_cut.unsqueeze(1) - octaves).clamp_min(0))
    for _ in range(settings.eq_bands):  # a loop over bands (2-3), never over clips
        centre = _uniform(batch, np.log2(200.0), np.log2(6000.0), generator, device).unsqueeze(1)
        width = _uniform(batch, 0.3, 1.5, generator, device).unsqueeze(1)
        gain = _uniform(batch, -settings.eq_db, settings.eq_db, generator, device).unsqueeze(1)
        response = response + gain * torch.exp(-0.5 * ((octaves - centre) / width) ** 2)
    return response.clamp_min(-80.0)


def random_channel(wave: torch.Tensor, settings: AugmentSettings, sample_rate: int,
                   generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """A random share (``channel_probability``) of clips through a random device's frequency response.

    Our own few lines: every clip gets its own cutoffs and EQ in one batched FFT (zero phase, padded
    against wrap-around), where torchaudio's biquads take one cutoff per call and torch-audiomentations
    draws from the global RNG (a job's augmentation must depend on its own seed only)."""
    if settings.channel_probability <= 0:
        return wave
    batch, samples = wave.shape
    # A smooth response has a short impulse response: a little padding keeps its wrap-around out.
    n_fft = _fast_length(samples + samples // 16)
    frequencies = torch.fft.rfftfreq(n_fft, d=1.0 / sample_rate).to(wave.device)
    response = channel_response_db(frequencies, batch, settings, sample_rate / 2, generator)
    chosen = torch.nonzero(torch.rand(batch, generator=generator, device=wave.device) < settings.channel_probability)[
        :, 0
    ]
    if len(chosen) == 0:  # (an empty batch would trip MKL's FFT)
        return wave
    spectrum = torch.fft.rfft(wave[chosen].float(), n=n_fft) * 10 ** (response[chosen] / 20)
    out = wave.clone()
    out[chosen] = torch.fft.irfft(spectrum, n=n_fft)[:, :samples].to(wave.dtype)
    return out


def _fast_length(n: int) -> int:
    """The next power of two from ``n``: FFTs of that length are the fastest."""
    return 1 << (n - 1).bit_length()


def random_reverb(wave: torch.Tensor, settings: AugmentSettings, sample_rate: int,
                  generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """A random share (``reverb_probability``) of clips in a random room: convolved with a synthetic
    impulse response (a direct path, then exponentially decaying noise with its RT60 drawn in
    [0.1 s, ``reverb_seconds_max``]), the clip's energy kept. One batched FFT convolution."""
    if settings.reverb_probability <= 0:
        return wave
    batch, samples = wave.shape
    device = wave.device
    chosen = torch.nonzero(torch.rand(batch, generator=generator, device=device) < settings.reverb_probability)[:, 0]
    batch = len(chosen)
    if batch == 0:  # (an empty batch would trip MKL's FFT)
        return wave
    taps = max(2, int(settings.reverb_seconds_max * sample_rate))
    t = torch.arange(taps, device=device).unsqueeze(0) / sample_rate
    rt60 = _uniform(batch, 0.1, max(settings.reverb_seconds_max, 0.11), generator, device).unsqueeze(1)
    impulse = torch.randn(batch, taps, generator=generator, device=device) * torch.exp(-6.9 * t / rt60)
    direct = _uniform(batch, 0.3, 3.0, generator, device)  # direct-to-reverberant ratio -10 to +10 dB
    impulse[:, 0] = direct * impulse[:, 1:].pow(2).sum(1).sqrt()
    # Only the first ``samples`` outputs are kept: an FFT of samples + taps (a power of two) suffices.
    n_fft = _fast_length(samples + taps)
    dry = wave[chosen].float()
    wet = torch.fft.irfft(torch.fft.rfft(dry, n=n_fft) * torch.fft.rfft(impulse, n=n_fft), n=n_fft)[:, :samples]
    energy = dry.pow(2).sum(1, keepdim=True) / wet.pow(2).sum(1, keepdim=True).clamp_min(1e-12)
    out = wave.clone()
    out[chosen] = (wet * energy.sqrt()).to(wave.dtype)
    return out


def _masks(count: int, width: int, size: int, batch: int, generator: torch.Generator, device) -> torch.Tensor:
    """(batch, size) boolean: ``count`` random bands of width < ``width`` per clip."""
    positions = torch.arange(size, device=device).unsqueeze(0)
    masked = torch.zeros(batch, size, dtype=torch.bool, device=device)
    for _ in range(count):  # a loop over masks (2-3), never over clips
        w = torch.randint(0, max(1, width), (batch, 1), generator=generator, device=device)
        start = (torch.rand(batch, 1, generator=generator, device=device) * (size - w).clamp_min(1)).long()
        masked |= (positions >= start) & (positions < start + w)
    return masked


def spec_augment(features: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment masks on (batch, 1, freq, time) features, filled with each clip's mean.

    Our own few lines rather than torchaudio's ``mask_along_axis_iid``: that one draws from the
    global RNG, which would make a job's augmentation depend on everything else the process did.
    """
    if features.dim() != 4:
        return features  # waveform models: no spectrogram to mask
    batch, _, freq, time = features.shape
    freq_mask = _masks(settings.freq_masks, settings.freq_mask_width, freq, batch, generator, features.device)
    time_mask = _masks(settings.time_masks, settings.time_mask_width, time, batch, generator, features.device)
    mask = freq_mask[:, None, :, None] | time_mask[:, None, None, :]
    fill = features.mean(dim=(1, 2, 3), keepdim=True)
    return torch.where(mask, fill, features)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator):
    """Mix each clip with another of the batch; ``targets`` are class probabilities (batch, classes)."""
    if alpha <= 0:
        return inputs, targets
    batch = inputs.shape[0]
    # torch's Beta sampler takes no generator: draw lambda with numpy, from a seed our generator gives.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=batch).astype(np.float32))
    lam = torch.maximum(lam, 1 - lam).to(inputs.device)  # the clip keeps the larger share, and its label
    order = torch.randperm(batch, generator=generator, device=generator.device).to(inputs.device)
    shape = (-1,) + (1,) * (inputs.dim() - 1)
    mixed_inputs = lam.view(shape) * inputs + (1 - lam.view(shape)) * inputs[order]
    mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[order]
    return mixed_inputs, mixed_targets


def augment_waveforms(wave: torch.Tensor, noise: torch.Tensor | None, settings: AugmentSettings, sample_rate: int,
                      generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """The waveform stage in order: shift, room, gain, noise, device."""
    wave = time_shift(wave, int(sample_rate * settings.time_shift_ms / 1000), generator)
    wave = random_reverb(wave, settings, sample_rate, generator)
    wave = random_gain(wave, settings.gain_db, generator)
    if noise is not None:
        wave = add_noise(wave, noise, settings, generator)
    return random_channel(wave, settings, sample_rate, generator)
