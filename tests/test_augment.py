import torch

from wavefold import augment
from wavefold.augment import AugmentSettings


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_time_shift_moves_each_clip_and_zero_fills():
    wave = torch.arange(1, 101, dtype=torch.float32).repeat(8, 1)
    shifted = augment.time_shift(wave, 10, gen())
    for row in shifted:
        nonzero = row[row != 0]
        assert len(nonzero) >= 90
        assert torch.all(nonzero[1:] - nonzero[:-1] == 1)  # a contiguous piece of the original
    assert not torch.equal(shifted[0], shifted[1]) or not torch.equal(shifted[2], shifted[3])


def test_same_seed_same_augmentation_different_seed_different():
    wave = torch.randn(16, 16000)
    noise = torch.randn(100_000)
    settings = AugmentSettings()
    a = augment.augment_waveforms(wave, noise, settings, 16000, gen(1))
    b = augment.augment_waveforms(wave, noise, settings, 16000, gen(1))
    c = augment.augment_waveforms(wave, noise, settings, 16000, gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_is_mixed_at_the_drawn_snr():
    wave = torch.sin(torch.linspace(0, 2000, 16000)).repeat(64, 1)
    noise = torch.randn(200_000)
    settings = AugmentSettings(noise_probability=1.0, snr_db_min=10, snr_db_max=10)
    mixed = augment.add_noise(wave, noise, settings, gen())
    added = mixed - wave
    snr = 10 * torch.log10(wave.pow(2).mean(1) / added.pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 10.0), atol=0.01)
    silent = augment.add_noise(torch.zeros(4, 16000), noise, settings, gen())
    assert (silent.abs().sum(1) > 0).all()  # silence examples get noise at a random level


def test_spec_augment_masks_bands_and_keeps_shape():
    features = torch.randn(8, 1, 40, 101)
    masked = augment.spec_augment(features, AugmentSettings(freq_masks=1, freq_mask_width=10, time_masks=0), gen())
    assert masked.shape == features.shape
    changed_rows = (masked != features).any(dim=3).squeeze(1)  # (batch, freq)
    assert changed_rows.sum(1).max() <= 9
    assert augment.spec_augment(torch.randn(2, 1, 16000), AugmentSettings(), gen()).shape == (2, 1, 16000)


def test_mixup_mixes_inputs_and_targets_alike():
    inputs = torch.randn(32, 1, 40, 101)
    targets = torch.nn.functional.one_hot(torch.randint(0, 12, (32,)), 12).float()
    mixed, mixed_targets = augment.mixup(inputs, targets, 0.4, gen())
    assert torch.allclose(mixed_targets.sum(1), torch.ones(32))
    assert (mixed_targets.max(1).values >= 0.5).all()
    assert augment.mixup(inputs, targets, 0.0, gen())[0] is inputs


def _power_spectrum(wave):
    return torch.fft.rfft(wave, n=2 * wave.shape[1]).abs() ** 2


def test_each_clip_goes_through_the_device_response_it_drew():
    settings = AugmentSettings(channel_probability=1.0, lowpass_hz_min=1500.0, highpass_hz_max=600.0)
    wave = torch.randn(16, 16000, generator=gen(3))
    out = augment.random_channel(wave, settings, 16000, gen(9))
    frequencies = torch.fft.rfftfreq(32000, d=1 / 16000)
    response = augment.channel_response_db(frequencies, 16, settings, 8000.0, gen(9))
    measured_db = 10 * torch.log10(_power_spectrum(out) / _power_spectrum(wave))
    band = (frequencies > 100) & (frequencies < 7900)
    error = (measured_db[:, band] - response[:, band]).abs()
    assert error.median() < 1.0  # the response applied is the one drawn (windowing smears the rest)
    assert response[:, band].std(0).mean() > 3  # every clip its own device


def test_band_limiting_removes_the_top_of_the_spectrum_on_average():
    wave = torch.randn(64, 16000, generator=gen(4))
    frequencies = torch.fft.rfftfreq(32000, d=1 / 16000)
    high = frequencies > 5000

    def high_share(x):
        power = _power_spectrum(x)
        return (power[:, high].sum(1) / power.sum(1)).mean().item()

    flat = augment.random_channel(wave, AugmentSettings(channel_probability=0.0), 16000, gen(1))
    assert torch.equal(flat, wave)  # off: untouched, no draw
    limited = augment.random_channel(wave, AugmentSettings(channel_probability=1.0, eq_bands=0), 16000, gen(1))
    assert high_share(limited) < 0.6 * high_share(wave)


def test_reverb_adds_a_decaying_tail_and_keeps_the_energy():
    settings = AugmentSettings(reverb_probability=1.0, reverb_seconds_max=0.6)
    click = torch.zeros(8, 16000)
    click[:, 1600] = 1.0
    wet = augment.random_reverb(click, settings, 16000, gen(5))
    assert torch.allclose(wet.pow(2).sum(1), click.pow(2).sum(1), rtol=1e-3)
    tail = wet[:, 1600 + 160 :].pow(2).sum(1) / wet.pow(2).sum(1)  # after 10 ms
    assert (tail > 0.01).all() and (wet[:, :1600].abs().max() < 1e-6)  # causal: nothing before the click
    assert torch.equal(augment.random_reverb(click, settings, 16000, gen(5)), wet)  # seeded
    assert torch.equal(augment.random_reverb(click, AugmentSettings(), 16000, gen(5)), click)  # off by default


def test_every_stage_at_zero_returns_the_batch_unchanged():
    """Every probability, width and amount at 0: the waveform stage, SpecAugment and mixup each return
    their input exactly (bit for bit), noise and generator given or not."""
    off = AugmentSettings(time_shift_ms=0, gain_db=0, noise_probability=0, freq_masks=0, time_masks=0, mixup_alpha=0,
                          reverb_probability=0, channel_probability=0)  # fmt: skip
    wave = torch.randn(16, 16000, generator=gen(2))
    for noise in (None, torch.randn(100_000, generator=gen(3))):
        assert torch.equal(augment.augment_waveforms(wave, noise, off, 16000, gen(4)), wave)
    features = torch.randn(16, 1, 40, 101, generator=gen(5))
    assert torch.equal(augment.spec_augment(features, off, gen(6)), features)
    targets = torch.eye(12)[torch.arange(16) % 12]
    mixed, mixed_targets = augment.mixup(features, targets, 0.0, gen(7))
    assert torch.equal(mixed, features) and torch.equal(mixed_targets, targets)
    on = augment.augment_waveforms(wave, None, AugmentSettings(), 16000, gen(4))
    assert not torch.equal(on, wave)  # the defaults do change it


def test_room_and_device_leave_each_clip_they_do_not_draw_exactly_alone():
    """With probability 1/2, some clips of a batch go through a room or a device and the others are
    returned untouched, bit for bit (no filter with a flat response, no renormalised level)."""
    wave = torch.randn(64, 16000, generator=gen(2))
    for settings in (AugmentSettings(reverb_probability=0.5), AugmentSettings(channel_probability=0.5)):
        off = {"time_shift_ms": 0, "gain_db": 0, "noise_probability": 0}
        settings = AugmentSettings(**{**settings.__dict__, **off})
        out = augment.augment_waveforms(wave, None, settings, 16000, gen(9))
        untouched = (out == wave).all(1)
        assert 10 <= untouched.sum() <= 54, untouched.sum()  # about half of them
        assert not torch.isclose(out[~untouched], wave[~untouched], atol=1e-3).all(1).any()  # the others changed
