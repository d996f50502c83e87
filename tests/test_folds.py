import numpy as np
import pandas as pd
import pytest

from wavefold import folds
from wavefold.competitions.tensorflow_speech import LABELS, WORDS, label_of


def synthetic_train(speakers=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(speakers):
        for word in rng.choice(WORDS, size=12, replace=False):
            rows.append(
                {"id": f"{word}/{s:08x}_nohash_0.wav", "target": word, "label": label_of(word), "group": f"{s:08x}"}
            )
    return pd.DataFrame(rows)


def noise_table():
    return pd.DataFrame({"name": ["a.wav", "b.wav"], "start": [0, 160000], "length": [160000, 80000]})


def test_folds_group_speakers_and_stratify():
    train = synthetic_train()
    fold = folds.assign_folds(train, 5, seed=1)
    train["fold"] = fold
    assert set(fold) == set(range(5))
    assert (train.groupby("group")["fold"].nunique() == 1).all()
    share = train.groupby("fold")["label"].apply(lambda s: (s == "unknown").mean())
    assert share.max() - share.min() < 0.15
    np.testing.assert_array_equal(fold, folds.assign_folds(train, 5, seed=1))  # reproducible


def test_too_few_speakers_is_a_clear_error():
    with pytest.raises(folds.FoldError, match="only 3 speakers"):
        folds.assign_folds(synthetic_train(speakers=3), 5, seed=0)


def test_noise_stretches_and_silence_never_cross_folds():
    segments = folds.noise_segments(noise_table(), 4, min_length=16000)
    assert len(segments) == 8 and set(segments["fold"]) == set(range(4))
    assert segments.groupby("name")["length"].sum().tolist() == [160000, 80000]
    silence = folds.silence_clips(segments, {0: 30, 1: 30, 2: 30, 3: 30}, 16000, seed=0)
    assert len(silence) == 120 and (silence["gain"] == 0).any()
    # Independent of check_no_leakage: windows of different folds never share a sample.
    spans = [(r.start, r.start + 16000, r.fold) for r in silence.itertuples()]
    owned = np.full(240000, -1)
    for seg in segments.itertuples():
        owned[seg.start : seg.start + seg.length] = seg.fold
    for start, end, fold in spans:
        assert (owned[start:end] == fold).all()
    train = synthetic_train()
    train["fold"] = folds.assign_folds(train, 4, seed=0)
    folds.check_no_leakage(train, segments, silence, 16000)


def test_leakage_check_catches_a_crossing():
    train = synthetic_train()
    train["fold"] = folds.assign_folds(train, 4, seed=0)
    segments = folds.noise_segments(noise_table(), 4, min_length=16000)
    silence = folds.silence_clips(segments, {0: 5}, 16000, seed=0)
    bad = silence.assign(fold=1)
    with pytest.raises(folds.FoldError, match="outside the noise"):
        folds.check_no_leakage(train, segments, bad, 16000)
    train.loc[0, "fold"] = (train.loc[0, "fold"] + 1) % 4
    with pytest.raises(folds.FoldError, match="groups \\(speakers\\) in several folds"):
        folds.check_no_leakage(train, segments, silence, 16000)


def test_short_noise_is_left_out_and_summary_counts():
    segments = folds.noise_segments(noise_table(), 10, min_length=8001)
    assert set(segments["name"]) == {"a.wav"}
    train = synthetic_train()
    train["fold"] = folds.assign_folds(train, 5, seed=0)
    per_fold = folds.silence_per_fold(train["fold"].value_counts(), 0.1)
    silence = folds.silence_clips(folds.noise_segments(noise_table(), 5, 16000), per_fold, 16000, 0)
    table = folds.summary(train, silence, LABELS)
    assert table.loc["all", "clips"] == len(train) + len(silence)
    assert table.loc["all", "groups"] == 40
    assert abs(table.loc["all", "silence"] / table.loc["all", "clips"] - 0.1) < 0.01


@pytest.mark.parametrize(
    "speakers, n_folds, noise_length, expected",
    [
        (4, 5, 160000, "the training set has only 4 speakers"),
        (40, 12, 160000, "some labels have fewer speakers (groups) than folds"),
        (40, 5, 48000, "the longest background recording holds 3 clips"),
    ],
)
def test_a_fold_count_the_data_cannot_carry_names_the_setting_and_its_limit(speakers, n_folds, noise_length, expected):
    train = synthetic_train(speakers=speakers)
    noise = pd.DataFrame({"name": ["a.wav"], "start": [0], "length": [noise_length]})
    with pytest.raises(folds.FoldError) as error:
        folds.check_fold_count(train, noise, n_folds, 16000)
    message = str(error.value)
    assert message.startswith(f"folds.n_folds is {n_folds}, but ") and expected in message
    if speakers > 10:
        limit = int(message.rsplit("at most ", 1)[1].rstrip("."))
        assert 2 <= limit < n_folds
        folds.check_fold_count(train, pd.DataFrame({"name": ["a.wav"], "start": [0], "length": [10**7]}), limit, 16000)
    else:
        assert "Not even 2 folds fit these data" in message or "at most" in message
