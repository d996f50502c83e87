"""The submission check, the local scorer and the pseudo-label selection, without Snakemake."""

import numpy as np
import pandas as pd
import pytest

from conftest import speech
from wavefold import pseudo, submission
from wavefold.competitions.tensorflow_speech import LABELS

SPEECH = speech()


@pytest.fixture
def sample():
    return pd.DataFrame({"fname": [f"clip_{i:09x}.wav" for i in range(6)], "label": "silence"})


def test_a_valid_submission_is_written(sample, tmp_path):
    made = sample.assign(label=["yes", "no", "unknown", "silence", "go", "stop"])
    submission.write_checked(made, sample, tmp_path / "submission.csv", SPEECH)
    assert pd.read_csv(tmp_path / "submission.csv").equals(made)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda s: s.iloc[:-1], "5 rows, the sample submission has 6"),
        (lambda s: pd.concat([s.iloc[:-1], s.iloc[:1]]), "1 clips appear more than once"),
        (lambda s: s.assign(fname=s["fname"].replace({"clip_000000005.wav": "clip_xyz.wav"})), "not in the sample"),
        (lambda s: s.assign(label=["yes", "maybe", "no", "no", "no", "no"]), "labels are not one of"),
        (lambda s: s.rename(columns={"label": "prediction"}), "columns are"),
    ],
)
def test_an_invalid_submission_is_never_written(sample, tmp_path, damage, expected):
    with pytest.raises(submission.SubmissionError, match=expected):
        submission.write_checked(damage(sample), sample, tmp_path / "submission.csv", SPEECH)
    assert not (tmp_path / "submission.csv").exists()


def test_local_score_splits_public_and_private():
    solution = pd.DataFrame({"fname": list("abcd"), "label": ["yes", "no", "yes", "no"],
                             "Usage": ["Public", "Public", "Private", "Private"]})  # fmt: skip
    made = pd.DataFrame({"fname": list("abcd"), "label": ["yes", "yes", "yes", "no"]})
    assert submission.score(made, solution, SPEECH) == {"all": 0.75, "public": 0.5, "private": 1.0}


def test_pseudo_labels_need_confidence_agreement_and_respect_class_caps():
    n = 8
    probabilities = np.full((n, len(LABELS)), 0.01)
    top = ["yes", "yes", "yes", "no", "no", "unknown", "silence", "go"]
    confidence = [0.99, 0.98, 0.97, 0.96, 0.5, 0.99, 0.99, 0.99]
    for i, (label, p) in enumerate(zip(top, confidence)):
        probabilities[i, LABELS.index(label)] = p
    fnames = [f"clip_{i:09x}.wav" for i in range(n)]
    blend = pd.DataFrame(probabilities, columns=list(LABELS)).assign(fname=fnames)
    other = blend.copy()
    other.loc[7, "go"], other.loc[7, "stop"] = 0.0, 1.0  # a model disagrees on clip 7
    index = pd.DataFrame({"fname": fnames, "usable": [True] * 5 + [False] + [True] * 2})  # clip 5 undecodable
    counts = pd.Series({"yes": 2, "no": 5, "unknown": 10, "silence": 10, "go": 10})
    taken, summary = pseudo.select(blend, {"a": blend, "b": other}, index, counts,
                                   pseudo.PseudoSettings(threshold=0.9, agreement=True, class_cap=1.0, class_share=0),
                                   LABELS)  # fmt: skip
    assert taken["fname"].tolist() == [fnames[i] for i in (0, 1, 3, 6)]  # yes capped at 2, the most confident
    summary = summary.set_index("label")
    assert summary.loc["yes", ["confident", "agreed", "cap", "taken"]].tolist() == [3, 3, 2, 2]
    assert summary.loc["go", "agreed"] == 0 and summary.loc["unknown", "confident"] == 0


def test_a_class_whose_clips_never_reach_the_threshold_takes_its_most_confident_share():
    """Under a shift the blend is unsure of every command word: none reaches 0.95. Each class then
    takes its top 20% (class_share) when at least min_confidence, and agreed; the catch-all class
    (unknown) keeps the threshold; a class already reaching it is not lowered."""
    rows = []  # (label, confidence) of the blend's top label
    rows += [("left", c) for c in np.linspace(0.6, 0.87, 10)]  # top 2: 0.87 and 0.84
    rows += [("unknown", c) for c in np.linspace(0.6, 0.87, 10)]
    rows += [("go", c) for c in np.linspace(0.3, 0.45, 10)]  # all under min_confidence
    rows += [("yes", c) for c in [0.99] * 5 + [0.7] * 5]  # top 20% reach the threshold: bar stays 0.95
    probabilities = np.full((len(rows), len(LABELS)), 0.0)
    for i, (label, confidence) in enumerate(rows):
        probabilities[i, LABELS.index(label)] = confidence
        probabilities[i, LABELS.index("silence")] = (1 - confidence) / 2  # a runner-up, never the top
    fnames = [f"clip_{i:09x}.wav" for i in range(len(rows))]
    blend = pd.DataFrame(probabilities, columns=list(LABELS)).assign(fname=fnames)
    disagreeing = blend.copy()
    disagreeing.loc[8, "left"], disagreeing.loc[8, "stop"] = 0.0, 1.0  # a model says "stop" for left's 2nd best
    index = pd.DataFrame({"fname": fnames, "usable": True})
    counts = pd.Series(100, index=list(LABELS))
    settings = pseudo.PseudoSettings(threshold=0.95, class_share=0.2, min_confidence=0.5)
    taken, summary = pseudo.select(blend, {"a": blend}, index, counts, settings, LABELS, catch_all="unknown")
    by_label = taken.groupby("label")["confidence"].apply(lambda c: sorted(c.round(2), reverse=True)).to_dict()
    assert by_label == {"left": [0.87, 0.84], "yes": [0.99] * 5}
    bars = summary.set_index("label")["bar"]
    assert bars["left"] == pytest.approx(0.84) and bars["unknown"] == 0.95 and bars["yes"] == 0.95
    assert bars["go"] == 0.5  # floored: a class the blend never favours by a majority gives nothing
    agreed, _ = pseudo.select(blend, {"a": blend, "b": disagreeing}, index, counts, settings, LABELS, "unknown")
    assert agreed.loc[agreed["label"] == "left", "confidence"].round(2).tolist() == [0.87]
    fixed, _ = pseudo.select(blend, {"a": blend}, index, counts, pseudo.PseudoSettings(class_share=0), LABELS,
                             catch_all="unknown")  # fmt: skip
    assert set(fixed["label"]) == {"yes"}  # the fixed threshold alone: what the hard-shift demo got (silence only)


def test_only_the_checked_file_is_uploaded(tmp_path):
    sample = pd.DataFrame({"fname": ["a.wav", "b.wav", "c.wav"], "label": ["silence"] * 3})
    path = tmp_path / "submission.csv"
    good = pd.DataFrame({"fname": ["a.wav", "b.wav", "c.wav"], "label": ["yes", "no", "unknown"]})
    submission.write_checked(good, sample, path, SPEECH)
    recorded = submission.file_sha256(path)
    assert submission.check_upload(path, sample, recorded + "\n", SPEECH) == recorded
    edited = good.copy()
    edited.loc[1, "label"] = "go"  # valid, but not what the workflow made
    edited.to_csv(path, index=False)
    with pytest.raises(submission.SubmissionError, match="not the file the submission rule checked"):
        submission.check_upload(path, sample, recorded, SPEECH)
    edited.drop(index=2).replace({"go": "banana"}).to_csv(path, index=False)  # a row dropped, a bad label
    with pytest.raises(submission.SubmissionError, match=r"(?s)2 rows.*banana"):
        submission.check_upload(path, sample, recorded, SPEECH)
