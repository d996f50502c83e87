import numpy as np
import pytest
import soundfile as sf

from bad_audio import EXPECTED, write_bad_clips
from wavefold.audio import AudioPolicy, conform, loudest_window, to_int16


@pytest.fixture(scope="module")
def bad_clips(tmp_path_factory):
    return write_bad_clips(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_clip_gets_documented_outcome(bad_clips, case):
    kinds, rejected = EXPECTED[case]
    samples, report = conform(bad_clips[case], AudioPolicy())
    assert {p.kind for p in report.problems} == kinds
    assert report.rejected == rejected
    if rejected:
        assert samples is None
    else:
        assert samples.dtype == np.int16 and samples.shape == (16000,)


def test_good_clip_is_bit_exact(tmp_path):
    original = (np.random.default_rng(0).integers(-20000, 20000, 16000)).astype(np.int16)
    sf.write(tmp_path / "ok.wav", original, 16000, subtype="PCM_16")
    samples, report = conform(tmp_path / "ok.wav", AudioPolicy())
    assert report.problems == []
    np.testing.assert_array_equal(samples, original)


def test_short_clip_is_padded_at_the_end(bad_clips):
    samples, _ = conform(bad_clips["short"], AudioPolicy())
    assert np.abs(samples[: int(0.6 * 16000) - 10]).max() > 5000
    assert not samples[int(0.6 * 16000) :].any()


def test_long_clip_keeps_the_loudest_second(bad_clips):
    samples, report = conform(bad_clips["long"], AudioPolicy())
    assert report.problems[0].action == "trimmed"
    assert (samples != 0).sum() == 1000  # the whole loud burst is inside the kept window


def test_resampled_and_downmixed_clips_keep_their_content(bad_clips):
    for case in ("rate8k", "stereo", "depth24"):
        samples, _ = conform(bad_clips[case], AudioPolicy())
        spectrum = np.abs(np.fft.rfft(samples.astype(float)))
        assert abs(np.argmax(spectrum) - 440) <= 1, case  # 1 Hz per bin for a 1 s clip


@pytest.mark.parametrize(
    "setting, case", [("short", "short"), ("long", "long"), ("other_rates", "rate8k"), ("multichannel", "stereo")]
)
def test_reject_policies(bad_clips, setting, case):
    samples, report = conform(bad_clips[case], AudioPolicy(**{setting: "reject"}))
    assert samples is None and report.rejected


def test_noise_recordings_keep_their_length(bad_clips):
    samples, report = conform(bad_clips["long"], AudioPolicy(), fixed_length=False)
    assert len(samples) == 24000 and report.problems == []


def test_helpers():
    assert loudest_window(np.array([0, 0, 5, 5, 0, 0.0]), 2) == 2
    np.testing.assert_array_equal(to_int16(np.array([-1.0, 0.0, 0.99999, 2.0])), [-32768, 0, 32767, 32767])
