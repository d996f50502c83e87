import numpy as np
import pytest

from wavefold import offline_augment
from wavefold.offline_augment import OfflineSettings


def tone(freq=440.0, seconds=0.5, rate=16000):
    clip = np.zeros(rate, dtype=np.int16)
    t = np.arange(int(seconds * rate)) / rate
    clip[4000 : 4000 + len(t)] = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return clip


def peak_hz(clip):
    spectrum = np.abs(np.fft.rfft(clip.astype(float)))
    return np.argmax(spectrum) * 16000 / len(clip)


def voiced(clip):
    return int((np.abs(clip) > 1000).sum())


def test_variants_change_what_they_promise():
    clip = tone()
    faster = offline_augment.make_variant(clip, "speed", 1.2, 16000)
    assert abs(peak_hz(faster) - 440 * 1.2) < 5 and voiced(faster) < voiced(clip) * 0.9
    higher = offline_augment.make_variant(clip, "pitch", 2.0, 16000)
    assert abs(peak_hz(higher) - 440 * 2 ** (2 / 12)) < 8 and abs(voiced(higher) - voiced(clip)) < 0.1 * voiced(clip)
    slower = offline_augment.make_variant(clip, "stretch", 0.8, 16000)
    assert abs(peak_hz(slower) - 440) < 5 and voiced(slower) > voiced(clip) * 1.1
    for variant in (faster, higher, slower):
        assert variant.dtype == np.int16 and variant.shape == clip.shape


def test_plan_is_seeded_and_within_ranges():
    settings = OfflineSettings(variants_per_clip=3, speed=(0.9, 1.1), pitch_semitones=(-1, 1), stretch=(0.8, 1.2))
    plan = offline_augment.plan_variants(50, settings, seed=3)
    assert len(plan) == 150 and set(plan["kind"]) == {"speed", "pitch", "stretch"}
    assert plan.equals(offline_augment.plan_variants(50, settings, seed=3))
    assert plan.loc[plan["kind"] == "speed", "factor"].between(0.9, 1.1).all()
    assert plan.loc[plan["kind"] == "pitch", "factor"].between(-1, 1).all()
    assert len(offline_augment.plan_variants(50, OfflineSettings(variants_per_clip=0), seed=3)) == 0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="kinds"):
        OfflineSettings.from_config({"kinds": ["reverse"]})
    with pytest.raises(ValueError, match="offline_augment.variants: unknown setting"):
        OfflineSettings.from_config({"variants": 2})
    assert OfflineSettings.from_config({"speed": [0.8, 1.2]}).speed == (0.8, 1.2)


def test_write_variants_follows_the_plan(tmp_path):
    clips = np.stack([tone(300), tone(500), tone(700)])
    np.save(tmp_path / "clips.npy", clips)
    plan = offline_augment.plan_variants(3, OfflineSettings(variants_per_clip=2, kinds=("speed",)), seed=0)
    offline_augment.write_variants(str(tmp_path / "clips.npy"), plan, str(tmp_path / "out.npy"), 16000, workers=1)
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (6, 16000)
    for i, row in plan.iterrows():
        assert abs(peak_hz(out[i]) - [300, 500, 700][row.source_row] * row.factor) < 6
