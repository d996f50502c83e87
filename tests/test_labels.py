import numpy as np

from wavefold.labels import LABELS, WORDS, label_of, official_split, speaker_of


def test_label_space():
    assert len(WORDS) == 30 and len(set(WORDS)) == 30
    assert LABELS == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "silence", "unknown")
    assert label_of("marvin") == "unknown" and label_of("stop") == "stop"


def test_speaker_of():
    assert speaker_of("00f0204f_nohash_3.wav") == "00f0204f"


def test_official_split_is_per_speaker_and_near_ten_percent():
    rng = np.random.default_rng(0)
    speakers = [f"{rng.integers(0, 2**32):08x}" for _ in range(4000)]
    splits = [official_split(f"{s}_nohash_0.wav") for s in speakers]
    assert all(official_split(f"{s}_nohash_4.wav") == split for s, split in zip(speakers, splits))
    share = {name: splits.count(name) / len(splits) for name in ("validation", "testing", "training")}
    assert abs(share["validation"] - 0.1) < 0.02 and abs(share["testing"] - 0.1) < 0.02
