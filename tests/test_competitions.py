"""The competition interface, and what the speech challenge's module says about its data."""

import numpy as np
import pandas as pd
import pytest

from conftest import speech
from wavefold import competitions
from wavefold.competitions.tensorflow_speech import LABELS, WORDS, label_of, official_split, speaker_of


def test_label_space():
    assert len(WORDS) == 30 and len(set(WORDS)) == 30
    assert LABELS == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "silence", "unknown")
    assert label_of("marvin") == "unknown" and label_of("stop") == "stop"
    assert speech().labels == LABELS


def test_speaker_of():
    assert speaker_of("00f0204f_nohash_3.wav") == "00f0204f"


def test_official_split_is_per_speaker_and_near_ten_percent():
    rng = np.random.default_rng(0)
    speakers = [f"{rng.integers(0, 2**32):08x}" for _ in range(4000)]
    splits = [official_split(f"{s}_nohash_0.wav") for s in speakers]
    assert all(official_split(f"{s}_nohash_4.wav") == split for s, split in zip(speakers, splits))
    share = {name: splits.count(name) / len(splits) for name in ("validation", "testing", "training")}
    assert abs(share["validation"] - 0.1) < 0.02 and abs(share["testing"] - 0.1) < 0.02


def test_a_finer_label_space_folds_its_classes_into_their_labels():
    """words31: each auxiliary word's probability goes to unknown, a command's and silence's to
    themselves; the labels space is the identity."""
    words = speech().label_space("words31")
    assert words.silence_class == 30 and not words.is_labels
    eye = words.fold(np.eye(31))
    for i, word in enumerate(WORDS + ("silence",)):
        expected = word if word in LABELS else "unknown"
        assert eye[i].tolist() == [float(label == expected) for label in LABELS]
    labels = speech().label_space("labels")
    assert labels.is_labels and labels.silence_class == 10
    p = np.random.default_rng(0).dirichlet(np.ones(12), 5)
    assert np.array_equal(labels.fold(p), p)
    assert speech().label_space_of(WORDS + ("silence",)).name == "words31"
    with pytest.raises(ValueError, match="label_space: 'labels12' is not one of"):
        speech().label_space("labels12")


def test_an_unknown_competition_names_the_ones_there_are():
    with pytest.raises(competitions.UnknownCompetition, match="tensorflow-speech-recognition-challenge"):
        competitions.get("birdclef-2099")


def test_speech_listing_gives_targets_labels_and_speaker_groups(tiny_extracted):
    listing = speech().list_train(tiny_extracted, warn=print)
    clips = listing.clips
    assert set(clips["target"]) == set(WORDS)
    assert (clips["label"] == clips["target"].map(label_of)).all()
    assert (clips["group"] == clips["path"].map(lambda p: p.rsplit("/", 1)[1].split("_nohash_")[0])).all()
    assert len(listing.noise) == 6 and all("_background_noise_" in p for p in listing.noise)


def test_accuracy_is_scored_per_clip_in_the_solutions_order():
    solution = pd.DataFrame({"fname": ["a", "b", "c"], "label": ["yes", "no", "up"]})
    submission = pd.DataFrame({"fname": ["c", "a", "b"], "label": ["up", "no", "no"]})
    assert speech().score_rows(submission, solution).tolist() == [0.0, 1.0, 1.0]
