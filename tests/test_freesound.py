"""The Freesound audio tagging challenge's module: MAP@3, its submission format, its files, its demo."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from wavefold import blend, competitions, sources
from wavefold.competitions.freesound_audio_tagging import LABELS, map3_of_probabilities

SLUG = "freesound-audio-tagging"


def freesound():
    return competitions.get(SLUG)


def test_the_41_labels_of_the_real_competition():
    assert len(LABELS) == 41 and len(set(LABELS)) == 41
    assert {"Hi-hat", "Violin_or_fiddle", "Gunshot_or_gunfire", "Burping_or_eructation"} <= set(LABELS)
    assert freesound().labels == LABELS and freesound().silence_label is None


def test_map_at_3_against_a_hand_computed_example():
    # Per clip: true label 1st -> 1, 2nd -> 1/2, 3rd -> 1/3, 4th or absent -> 0; a repeat counts once.
    solution = pd.DataFrame({"fname": ["a", "b", "c", "d", "e", "f"],
                             "label": ["Bark", "Meow", "Gong", "Bus", "Cello", "Knock"]})  # fmt: skip
    submission = pd.DataFrame({
        "fname": ["f", "e", "d", "c", "b", "a"],  # another order: rows are matched by fname
        "label": ["Bark Bark Knock", "Cello", "Gong Bark Meow", "Bus Meow Gong", "Bark Meow Gong", "Bark Meow Gong"],
    })  # fmt: skip
    rows = freesound().score_rows(submission, solution)
    assert rows.tolist() == pytest.approx([1, 1 / 2, 1 / 3, 0, 1, 1 / 3])
    assert rows.mean() == pytest.approx((1 + 0.5 + 1 / 3 + 0 + 1 + 1 / 3) / 6)  # = 0.5278


def test_map_at_3_of_probabilities_is_the_submissions_score():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(41), 200)
    y = rng.integers(0, 41, 200)
    fnames = [f"{i:08x}.wav" for i in range(200)]
    made = freesound().submission_table(fnames, probabilities)
    solution = pd.DataFrame({"fname": fnames, "label": np.array(LABELS)[y]})
    assert map3_of_probabilities(probabilities, y) == pytest.approx(freesound().score_rows(made, solution))
    # Above top-1 accuracy wherever a 2nd or 3rd guess is right, as MAP@3 rewards.
    assert map3_of_probabilities(probabilities, y).mean() > (probabilities.argmax(1) == y).mean()


def test_the_submission_gives_three_labels_best_first_and_bad_rows_are_named():
    probabilities = np.zeros((2, 41))
    probabilities[0, [5, 3, 9]] = [0.5, 0.3, 0.2]
    probabilities[1, [0, 40, 1]] = [0.2, 0.7, 0.1]
    made = freesound().submission_table(["a.wav", "b.wav"], probabilities)
    assert made["label"].tolist() == [f"{LABELS[5]} {LABELS[3]} {LABELS[9]}", f"{LABELS[40]} {LABELS[0]} {LABELS[1]}"]
    assert freesound().predicted_labels(made).tolist() == [LABELS[5], LABELS[40]]
    assert freesound().submission_problems(made) == []
    bad = pd.DataFrame({"fname": ["a", "b", "c"], "label": ["Bark Woof", "", "Bark Meow Gong Bus"]})
    problems = " | ".join(freesound().submission_problems(bad))
    assert "['Woof']" in problems and "1 rows give no label" in problems and "more than 3" in problems


def test_the_blend_ranks_by_map_at_3_where_the_competition_scores_by_it():
    # Model "top1" gets the first guess right more often; model "top3" has the truth in its first three
    # almost always but rarely first. Accuracy prefers top1; MAP@3 prefers top3.
    rng = np.random.default_rng(1)
    n, classes = 600, 41
    y = rng.integers(0, classes, n)
    top1 = np.full((n, classes), 0.1)
    right = rng.random(n) < 0.5
    top1[right, y[right]] = 5.0
    top3 = np.full((n, classes), 0.1)
    first = rng.random(n) < 0.4
    top3[np.arange(n), (y + 1) % classes] = np.where(first, 0.5, 3.0)  # a wrong label first...
    top3[np.arange(n), y] = np.where(first, 4.0, 2.0)  # ...the truth second
    P = np.stack([top1 / top1.sum(1, keepdims=True), top3 / top3.sum(1, keepdims=True)])
    folds = np.arange(n) % 3
    settings = blend.BlendSettings(candidates=(), choose_by="auto")
    by_accuracy = blend.fit_blend(blend.Predictions(["top1", "top3"], P, y, folds, P[:, :50]), settings)
    by_map3 = blend.fit_blend(blend.Predictions(["top1", "top3"], P, y, folds, P[:, :50]),
                              settings, blend.competition_metric(freesound()))  # fmt: skip
    assert by_accuracy.chosen == "top1" and by_map3.chosen == "top3" and by_map3.chosen_by == "map3"
    table = by_map3.candidates.set_index("candidate")
    assert table.loc["top3", "map3"] > table.loc["top1", "map3"] and table.loc["top1", "accuracy"] > table.loc["top3", "accuracy"]
    assert blend.chosen_candidate(by_map3.candidates, "map3") == ("top3", pytest.approx(table.loc["top3", "map3"]))


def _write_wav(path, seconds, rate=44100):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(0).uniform(-0.1, 0.1, int(seconds * rate)), rate, subtype="PCM_16")


def test_the_listing_names_every_file_it_leaves_out(tmp_path):
    root = tmp_path / "extracted"
    for name in ("0000000a.wav", "0000000b.wav", "0000000c.wav", "0000000e.wav"):
        _write_wav(root / "audio_train" / name, 0.5)
    _write_wav(root / "audio_test" / "0000000f.wav", 0.5)
    pd.DataFrame({
        "fname": ["0000000a.wav", "0000000b.wav", "0000000c.wav", "0000000d.wav", "0000000a.wav"],
        "label": ["Bark", "Meow", "Woof", "Gong", "Bus"],
        "manually_verified": [1, 0, 1, 1, 0],
    }).to_csv(root / "train.csv", index=False)  # fmt: skip
    pd.DataFrame({"fname": ["0000000f.wav"], "label": "Bark Meow Gong"}).to_csv(root / "sample_submission.csv", index=False)
    assert freesound().check_layout(root) == []
    warnings = []
    listing = freesound().list_train(root, warn=warnings.append)
    clips = listing.clips
    assert clips["id"].tolist() == ["0000000a.wav", "0000000b.wav"]
    assert clips["label"].tolist() == ["Bark", "Meow"] and clips["manually_verified"].tolist() == [1, 0]
    assert clips["scored"].tolist() == [True, False]  # the CV is scored on verified labels only
    assert (clips["group"] == clips["id"]).all() and listing.noise == []  # no speakers: each clip its own group
    problems = {(p["path"].split("/")[-1], p["problem"], p["action"]) for p in listing.problems}
    assert problems == {
        ("0000000c.wav", "unknown_label", "skipped"),  # "Woof" is not a label
        ("0000000a.wav", "listed_twice", "first row kept"),
        ("0000000d.wav", "missing", "skipped"),  # listed, no file
        ("0000000e.wav", "unlisted", "skipped"),  # a file, no label
    }
    assert warnings == ["train.csv: 1 of 2 labels were not verified by a person"]


def test_a_speech_challenge_download_is_refused_naming_what_freesound_needs(tmp_path):
    root = tmp_path / "extracted"
    _write_wav(root / "train" / "audio" / "yes" / "00f0204f_nohash_0.wav", 1.0, 16000)
    with pytest.raises(sources.LayoutError, match="audio_train/<8 hex digits>.wav.*train.csv.*competition: "
                                                  "freesound-audio-tagging"):  # fmt: skip
        sources.check_layout(root, freesound())


def test_the_demo_is_laid_out_like_the_real_download(tmp_path):
    counts = competitions.generate_demo(SLUG, tmp_path, "tiny", seed=3, workers=2)
    with zipfile.ZipFile(tmp_path / f"{SLUG}.zip") as outer:
        assert sorted(outer.namelist()) == sorted(freesound().download_files)
        outer.extractall(tmp_path / "download")
    with zipfile.ZipFile(tmp_path / "download" / "audio_train.zip") as inner:
        names = inner.namelist()
        assert all(n.startswith("audio_train/") and len(n.split("/")[1]) == 12 for n in names)
    root = tmp_path / "extracted"
    sources.extract(tmp_path / "download", root, freesound())
    train = pd.read_csv(root / "train.csv")
    solution = pd.read_csv(tmp_path / "solution.csv")
    assert list(train.columns) == ["fname", "label", "manually_verified"] and train["label"].isin(LABELS).all()
    assert set(train["label"]) == set(LABELS) and set(solution["label"]) == set(LABELS)
    assert 0.25 < counts["unverified"] / counts["train_clips"] < 0.55  # about 40% unverified, as the real ones
    info = [sf.info(p) for p in sorted((root / "audio_train").glob("*.wav"))]
    assert {(i.samplerate, i.channels, i.subtype) for i in info} == {(44100, 1, "PCM_16")}
    seconds = np.array([i.duration for i in info])
    assert seconds.min() >= 0.3 and seconds.max() > 4 * seconds.min() and np.median(seconds) < 4
    assert set(solution["Usage"]) == {"Public", "Private"}


# ----------------------------------------------------------------------------- through the DAG
DAG_CONFIG = {
    "competition": SLUG,
    "demo": {"size": "tiny"},
    "folds": {"n_folds": 2},
    # Enough steps on 246 clips of 41 labels to learn more than chance (MAP@3 0.21 against 0.045); models
    # that unsure need a low bar to pseudo-label anything (their top probability averages 0.05).
    "training": {"run": ["lenet"], "defaults": {"epochs": 5, "batch_size": 16}},
    # Offline variants of its long clips cost a third of this run; the windowed variants are made in
    # Freesound 2019's DAG test (test_multilabel.py), which shares the 2-s window policy.
    "offline_augment": {"variants_per_clip": 0},
    "pseudo_label": {"rounds": 2, "threshold": 0.1, "min_confidence": 0.1, "agreement": False},
    "tracking": {"mlflow": False},
}


@pytest.fixture(scope="module")
def freesound_run(tmp_path_factory):
    from conftest import finished_run

    return finished_run(tmp_path_factory.mktemp("freesound"), DAG_CONFIG)


def hand_map3(submission: pd.DataFrame, solution: pd.DataFrame) -> float:
    """MAP@3 written out again, independently of the module's."""
    given = dict(zip(submission["fname"], submission["label"]))
    total = 0.0
    for fname, truth in zip(solution["fname"], solution["label"]):
        guesses = given[fname].split()[:3]
        total += 1.0 / (guesses.index(truth) + 1) if truth in guesses else 0.0
    return total / len(solution)


@pytest.mark.dag
def test_freesound_runs_end_to_end_to_a_map3_scored_submission(freesound_run):
    from wavefold import submission

    run = freesound_run
    sample = pd.read_csv(next(run.glob("resources/*/extracted/sample_submission.csv")))
    made = pd.read_csv(run / "results/submission/submission.csv")
    assert submission.problems(made, sample, freesound()) == []
    assert (made["label"].str.split().str.len() == 3).all()
    solution = pd.read_csv(next(run.glob("resources/*/solution.csv")))
    score = json.loads((run / "results/submission/local_score.json").read_text())
    assert score["all"] == pytest.approx(hand_map3(made, solution))
    chance = sum(1 / r for r in (1, 2, 3)) / len(LABELS)  # 0.045: three guesses out of 41
    assert score["all"] > 3 * chance, score  # the models learned the events
    submitted = pd.read_csv(run / "results/final/rounds.csv").set_index("round")["chosen"].idxmax()
    assert score["round"] == submitted
    final = pd.read_csv(run / f"results/blend/round{submitted}/candidates.csv").set_index("candidate").loc["final"]
    assert score["cv"] == pytest.approx(final["map3"], abs=1e-4)  # the CV printed is the competition's metric
    # Every row's CV beside its hidden score is in MAP@3, the competition's metric, not accuracy.
    scores = pd.read_csv(run / "results/submission/local_scores.csv")
    for row in scores[~scores["predictions"].str.startswith("final")].itertuples():
        candidates = pd.read_csv(run / f"results/blend/round{row.round}/candidates.csv").set_index("candidate")
        name = row.predictions.removeprefix("blend (").removesuffix(")")
        assert row.cv == pytest.approx(candidates.loc[name, "map3"], abs=1e-4), row
        assert abs(candidates.loc[name, "map3"] - candidates.loc[name, "accuracy"]) > 1e-3


@pytest.mark.dag
def test_the_cv_is_scored_on_the_verified_labels_only(freesound_run):
    """Every test label is verified, a quarter of the unverified training labels are wrong: the
    blend's CV (a model's row of candidates.csv) is its MAP@3 on the verified clips' OOF rows."""
    run = freesound_run
    folds = pd.read_csv(run / "results/folds/folds.csv").set_index("id")
    manifest = pd.read_csv(run / "results/index/train.csv").set_index("id")
    assert (folds["scored"] == (manifest.loc[folds.index, "manually_verified"] == 1)).all() and not folds["scored"].all()
    oof = pd.concat([pd.read_csv(run / f"results/train/round1/lenet/fold{k}/oof.csv") for k in (0, 1)]).set_index("id")
    y = folds.loc[oof.index, "label"].map(LABELS.index).to_numpy()
    per_row = map3_of_probabilities(oof[list(LABELS)].to_numpy(), y)
    verified = folds.loc[oof.index, "scored"].to_numpy()
    cv = pd.read_csv(run / "results/blend/round1/candidates.csv").set_index("candidate").loc["lenet", "map3"]
    assert cv == pytest.approx(per_row[verified].mean(), abs=1e-4)
    assert abs(per_row[verified].mean() - per_row.mean()) > 1e-3  # the unverified rows would have changed it
    # The per-model CV table says the same, per fold, in MAP@3.
    table = pd.read_csv(run / "results/cv/round1/cv.csv", index_col=0)
    for k in (0, 1):
        in_fold = folds.loc[oof.index, "fold"].to_numpy() == k
        assert table.loc["lenet", f"fold{k}"] == pytest.approx(per_row[verified & in_fold].mean(), abs=1e-4)


@pytest.mark.dag
def test_long_clips_are_cropped_in_training_and_averaged_over_their_windows(freesound_run):
    from wavefold.training import classifier

    run = freesound_run
    train = pd.read_csv(run / "results/index/train.csv")
    cache_rows = np.load(run / "results/cache/train.npy", mmap_mode="r")
    assert len(cache_rows) == train["windows"].sum() > len(train) and train["windows"].max() >= 3
    folds = pd.read_csv(run / "results/folds/folds.csv")
    assert folds["group"].nunique() == len(folds)  # no speakers: every clip its own group
    oof = pd.read_csv(run / "results/train/round1/lenet/fold0/oof.csv")
    assert set(oof["id"]) == set(folds.loc[folds["fold"] == 0, "id"]) and list(oof.columns[2:]) == list(LABELS)
    test = pd.read_csv(run / "results/predict/round1/lenet/fold0.csv")
    assert len(test) == len(pd.read_csv(run / "results/index/test.csv"))
    # One long validation clip's OOF row is the mean of the model's probabilities over its windows.
    model, _, _ = classifier.load(run / "results/train/round1/lenet/fold0/model.pt", torch.device("cpu"))
    model.eval()
    first = np.concatenate([[0], np.cumsum(train["windows"])[:-1]])
    long_clip = folds.index[(folds["fold"] == 0) & (folds["windows"] >= 3)][0]
    rows = np.asarray(cache_rows[first[long_clip] : first[long_clip] + folds.loc[long_clip, "windows"]])
    with torch.no_grad():
        per_window = torch.softmax(model(torch.from_numpy(rows.astype(np.float32) / 32768)), 1).numpy()
    written = oof.set_index("id").loc[folds.loc[long_clip, "id"], list(LABELS)].to_numpy(float)
    np.testing.assert_allclose(written, per_window.mean(0), atol=2e-5)
    assert np.abs(per_window[0] - per_window.mean(0)).max() > 1e-3  # not just the first window's


@pytest.mark.dag
def test_freesound_pseudo_labels_train_round_two(freesound_run):
    run = freesound_run
    for fold in (0, 1):
        pseudo = pd.read_csv(run / f"results/pseudo/round1/fold{fold}.csv")
        assert len(pseudo) > 0 and pseudo["label"].isin(LABELS).all()
        log = (run / f"logs/train/round2/lenet/fold{fold}.log").read_text()
        assert f"{len(pseudo)} pseudo-labelled test clips available" in log
