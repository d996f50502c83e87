"""Multi-label competitions, with Freesound Audio Tagging 2019 as the one shipped: lwlrap, label-set
folds, training on every label of a clip, blends that keep probabilities per label, its submission
of a score per label, and the whole DAG on its tiny demo."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from sklearn.metrics import label_ranking_average_precision_score

from wavefold import blend, competitions, folds, submit
from wavefold.competitions.freesound_audio_tagging_2019 import LABELS, lwlrap_rows
from wavefold.training import data as training_data
from wavefold.training.loop import MultiLabelLoss

SLUG = "freesound-audio-tagging-2019"


def fat2019():
    return competitions.get(SLUG)


# ----------------------------------------------------------------------------- the metric
def test_lwlrap_against_a_hand_computed_example():
    # Clip a holds X, ranked third: precision 1/3. Clip b holds X (ranked first: 1) and Z (third, with
    # X above it: 2/3). lwlrap weighs the three (clip, label) pairs alike: (1/3 + 1 + 2/3) / 3 = 2/3;
    # per-clip LRAP would give (1/3 + 5/6) / 2 = 7/12.
    scores = np.array([[0.1, 0.9, 0.5], [0.8, 0.7, 0.2]])
    truth = np.array([[1, 0, 0], [1, 0, 1]])
    assert lwlrap_rows(scores, truth).mean() == pytest.approx(2 / 3)
    assert lwlrap_rows(scores, truth).tolist() == pytest.approx([2 / 9, 10 / 9])


def test_lwlrap_is_label_weighted_lrap_ties_included():
    rng = np.random.default_rng(0)
    scores = rng.random((300, 80))
    scores[:100] = scores[:100].round(1)  # ties
    truth = (rng.random((300, 80)) < 0.02).astype(int)
    truth[np.arange(300), rng.integers(0, 80, 300)] = 1
    expected = label_ranking_average_precision_score(truth, scores, sample_weight=truth.sum(1))
    assert lwlrap_rows(scores, truth, chunk=64).mean() == pytest.approx(expected)
    assert expected != pytest.approx(label_ranking_average_precision_score(truth, scores))  # weighting matters


def test_the_submission_scores_per_label_and_a_ranking_column_scores_the_same():
    rng = np.random.default_rng(1)
    probabilities = rng.random((40, 80))
    fnames = [f"{i:08x}.wav" for i in range(40)]
    truth = [",".join(sorted(rng.choice(LABELS, size=rng.integers(1, 4), replace=False))) for _ in fnames]
    solution = pd.DataFrame({"fname": fnames, "label": truth})
    made = fat2019().submission_table(fnames, probabilities)
    assert list(made.columns) == ["fname", *LABELS] and fat2019().submission_problems(made) == []
    from_table = fat2019().score_rows(made.iloc[::-1], solution)  # rows are matched by fname
    ranking = pd.DataFrame({"fname": fnames, "label": fat2019().candidate_column(fnames, probabilities)})
    assert from_table.mean() == pytest.approx(fat2019().score_rows(ranking, solution).mean())
    y = fat2019().truth(solution["label"])
    assert from_table.mean() == pytest.approx(fat2019().metric_rows(probabilities, y).mean())
    bad = made.drop(columns=[LABELS[3]])
    assert LABELS[3] in " ".join(fat2019().submission_problems(bad))
    made.loc[2, LABELS[0]] = np.nan
    assert "1 rows have scores that are not numbers" in fat2019().submission_problems(made)


def test_kaggle_submissions_of_a_notebook_only_competition_are_refused_with_the_way_out():
    with pytest.raises(submit.SubmitError, match="a code competition.*submit.kind: notebook"):
        submit.refuse_notebook_only(fat2019())
    submit.refuse_notebook_only(competitions.get("freesound-audio-tagging"))  # a CSV competition passes


# ----------------------------------------------------------------------------- files
def _write_wav(path, seconds=0.5, rate=44100):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(0).uniform(-0.1, 0.1, int(seconds * rate)), rate, subtype="PCM_16")


def test_the_listing_keeps_label_sets_and_scores_only_the_curated_clips(tmp_path):
    root = tmp_path / "extracted"
    for name in ("0000000a.wav", "0000000b.wav", "0000000c.wav", "0000000e.wav"):
        _write_wav(root / "train_curated" / name)
    _write_wav(root / "train_noisy" / "0000000f.wav")
    _write_wav(root / "test" / "00000010.wav")
    pd.DataFrame({"fname": ["0000000a.wav", "0000000b.wav", "0000000c.wav", "0000000d.wav"],
                  "labels": ["Meow,Bark", "Gong", "Bark,Woof", "Gong"]}).to_csv(root / "train_curated.csv", index=False)
    pd.DataFrame({"fname": ["0000000f.wav"], "labels": ["Purr"]}).to_csv(root / "train_noisy.csv", index=False)
    fat2019().submission_table(["00000010.wav"], np.zeros((1, 80))).to_csv(root / "sample_submission.csv", index=False)
    assert fat2019().check_layout(root) == []
    clips = fat2019().list_train(root, warn=lambda _: None).clips
    assert clips["id"].tolist() == ["0000000a.wav", "0000000b.wav", "0000000f.wav"]
    assert clips["label"].tolist() == ["Bark,Meow", "Gong", "Purr"]  # in the competition's label order
    assert clips["scored"].tolist() == [True, True, False]
    problems = {(p["path"], p["problem"]) for p in fat2019().list_train(root, warn=lambda _: None).problems}
    assert problems == {("train_curated/0000000c.wav", "unknown_label"), ("train_curated/0000000d.wav", "missing"),
                        ("train_curated/0000000e.wav", "unlisted")}  # fmt: skip


def test_the_demo_is_laid_out_like_the_real_download(tmp_path):
    import zipfile

    from wavefold import sources

    counts = competitions.generate_demo(SLUG, tmp_path, "tiny", seed=5, workers=2)
    with zipfile.ZipFile(tmp_path / f"{SLUG}.zip") as outer:
        assert sorted(outer.namelist()) == sorted(fat2019().download_files)
        outer.extractall(tmp_path / "download")
    root = tmp_path / "extracted"
    sources.extract(tmp_path / "download", root, fat2019())
    curated = pd.read_csv(root / "train_curated.csv")
    assert list(curated.columns) == ["fname", "labels"]
    sets = competitions.split_label_sets(curated["labels"])
    held = set().union(*map(set, sets))
    assert {len(s) for s in sets} == {1, 2, 3} and held < set(LABELS) and len(held) == 40  # tiny: 40 of the 80
    assert list(pd.read_csv(root / "sample_submission.csv").columns) == ["fname", *LABELS]
    solution = pd.read_csv(tmp_path / "solution.csv")
    assert set(solution["fname"]) == {p.name for p in (root / "test").glob("*.wav")}
    assert 1.1 < counts["labels_per_clip"] < 1.6
    assert {sf.info(p).samplerate for p in (root / "train_noisy").glob("*.wav")} == {44100}


# ----------------------------------------------------------------------------- folds
def test_label_set_folds_give_every_fold_every_common_label_and_keep_groups_whole():
    rng = np.random.default_rng(2)
    labels = [f"l{i}" for i in range(30)]
    rows = []
    for g in range(300):  # 300 groups of 1-2 clips, each clip 1-3 labels; label 0..29 with falling frequency
        for c in range(rng.integers(1, 3)):
            chosen = rng.choice(30, size=rng.integers(1, 4), replace=False, p=np.linspace(2, 0.2, 30) / 33)
            rows.append({"group": f"g{g}", "label": ",".join(labels[i] for i in sorted(chosen))})
    train = pd.DataFrame(rows)
    fold = folds.assign_folds(train, 4, seed=0, multi_label_labels=labels)
    assert (train.assign(fold=fold).groupby("group")["fold"].nunique() == 1).all()
    holding = competitions.multi_hot(train["label"], labels)
    per_fold = np.stack([holding[fold == k].sum(0) for k in range(4)])  # (folds, labels) clip counts
    # Iterative stratification: each label's clips split about evenly (a random split of the groups
    # leaves some label of ~10 clips with none, or most, in one fold).
    share = per_fold / per_fold.sum(0)
    assert (per_fold > 0).all() and np.abs(share - 0.25).max() < 0.2, share.round(2)


# ----------------------------------------------------------------------------- training and blending
def test_a_multi_label_clip_trains_toward_all_its_labels_and_its_variants_too():
    space = fat2019().label_space("labels")
    assert space.multi_label and space.classes == LABELS
    sets = ["Bark,Meow", "Gong", "Bark", "Meow", "Meow"]
    table = pd.DataFrame({"id": list("abcde"), "target": sets, "label": sets, "group": list("abcde"),
                          "fold": [0, 1, 0, 1, 1]})  # fmt: skip
    clips = np.zeros((5, 100), np.int16)
    noise = np.zeros(100, np.int16)
    empty = pd.DataFrame(columns=["id", "fold", "start", "gain"])
    segments = pd.DataFrame(columns=["fold", "start", "length"])
    fold_data = training_data.load_fold(clips, noise, table, empty, segments, 1, space,
                                        variants=np.zeros((1, 100), np.int16), variant_sources=np.array([0]))  # fmt: skip
    targets = fold_data.batch_targets(np.array([0, 2, 5]), fold_data.train_targets[[0, 1, 0]])  # 5: the variant
    bark, meow = LABELS.index("Bark"), LABELS.index("Meow")
    assert np.flatnonzero(targets[0]).tolist() == [bark, meow]  # clip a: both of its labels
    assert np.flatnonzero(targets[1]).tolist() == [bark]
    assert np.flatnonzero(targets[2]).tolist() == [bark, meow]  # clip a's offline variant
    # Clip a is drawn as its rarer label on the training side: Meow (1 clip there) rather than Bark (2);
    # the validation fold's two Meow clips are not counted.
    assert fold_data.train_targets.tolist() == [meow, bark]


def test_the_multi_label_loss_is_each_labels_binary_cross_entropy():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0]])
    expected = -(np.log(1 / (1 + np.exp(-2.0))) + np.log(1 - 1 / (1 + np.exp(1.0))) + np.log(0.5)) / 3
    assert MultiLabelLoss()(logits, targets).item() == pytest.approx(expected, rel=1e-5)
    smoothed = MultiLabelLoss(0.2)(logits, targets).item()  # targets 0.9 / 0.1
    assert smoothed == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor([[0.9, 0.1, 0.9]])).item())  # fmt: skip


def test_a_multi_label_blend_keeps_each_labels_probability_and_leaves_out_the_stacker(caplog):
    rng = np.random.default_rng(3)
    n, labels = 400, 6
    y = (rng.random((n, labels)) < 0.3).astype(float)
    y[np.arange(n), rng.integers(0, labels, n)] = 1
    good = np.clip(y * 0.7 + rng.random((n, labels)) * 0.4, 0, 1)
    weak = np.clip(y * 0.2 + rng.random((n, labels)) * 0.8, 0, 1)
    P = np.stack([good, weak])
    settings = blend.BlendSettings(candidates=("mean", "logloss", "accuracy", "stacking"), prior_correction="em")
    result = blend.fit_blend(blend.Predictions(["good", "weak"], P, y, np.arange(n) % 4, P[:, :30]),
                             settings, blend.competition_metric(fat2019()))  # fmt: skip
    assert "stacking" not in set(result.candidates["candidate"])
    assert "stacking left out" in caplog.text and "prior_correction left out" in caplog.text
    weights = result.weights.set_index("model")["logloss"]
    assert weights["good"] > weights["weak"]
    mean_test = result.candidate_tests["mean"]
    assert np.allclose(mean_test, P[:, :30].mean(0))  # not renormalised to sum to 1 per clip
    assert result.chosen_by == "lwlrap"
    table = result.candidates.set_index("candidate")
    assert table.loc["good", "lwlrap"] > table.loc["weak", "lwlrap"]


# ----------------------------------------------------------------------------- through the DAG
DAG_CONFIG = {
    "competition": SLUG,
    "demo": {"size": "tiny"},
    "folds": {"n_folds": 2},
    "training": {"run": ["lenet"], "defaults": {"epochs": 5, "batch_size": 16}},
    "pseudo_label": {"rounds": 2, "threshold": 0.3, "agreement": False},
}


@pytest.fixture(scope="module")
def fat2019_run(tmp_path_factory):
    """The default target, which for this code competition ends in the rehearsed notebook (its wheels
    fetched from a folder the test fills, not PyPI)."""
    from conftest import dummy_wheel, finished_run

    wheels = tmp_path_factory.mktemp("fat2019-wheels")
    kernel = {"wheels": [dummy_wheel(wheels)], "wheels_from": str(wheels)}
    return finished_run(tmp_path_factory.mktemp("fat2019"), {**DAG_CONFIG, "kernel": kernel})


@pytest.mark.dag
def test_freesound_2019_runs_end_to_end_to_an_lwlrap_scored_submission(fat2019_run):
    from wavefold import submission

    run = fat2019_run
    sample = pd.read_csv(next(run.glob("resources/*/extracted/sample_submission.csv")))
    made = pd.read_csv(run / "results/submission/submission.csv")
    assert submission.problems(made, sample, fat2019()) == []
    solution = pd.read_csv(next(run.glob("resources/*/solution.csv")))
    score = json.loads((run / "results/submission/local_score.json").read_text())
    # lwlrap computed again, by scikit-learn, from the file itself
    truth = competitions.multi_hot(solution["label"], LABELS)
    scores = made.set_index("fname").loc[solution["fname"], list(LABELS)].to_numpy()
    assert score["all"] == pytest.approx(label_ranking_average_precision_score(truth, scores, sample_weight=truth.sum(1)))
    rng = np.random.default_rng(0)
    chance = np.mean([lwlrap_rows(rng.random(truth.shape), truth).mean() for _ in range(20)])
    assert score["all"] > 2.5 * chance, (score, chance)  # the models learned the events
    # Each label is a yes/no of its own (sigmoids): a row's scores do not sum to 1, as a softmax's do
    # (to within the CSV's rounding). They sum to about the expected number of labels, 1.2-1.3 here.
    oof = pd.read_csv(run / "results/train/round1/lenet/fold0/oof.csv")
    assert (np.abs(oof[list(LABELS)].sum(axis=1) - 1) > 0.01).mean() > 0.9
    submitted = pd.read_csv(run / "results/final/rounds.csv").set_index("round")["chosen"].idxmax()
    final = pd.read_csv(run / f"results/blend/round{submitted}/candidates.csv").set_index("candidate")
    assert score["cv"] == pytest.approx(final.loc["final", "lwlrap"], abs=1e-4) and "stacking" not in final.index
    # Round 2 trained on pseudo-labelled test clips, drawn by their top label
    pseudo = pd.read_csv(run / "results/pseudo/round1/summary.csv")
    assert pseudo.loc[pseudo["label"] == "all", "taken"].sum() > 0
    assert "pseudo-labelled test clips" in (run / "logs/train/round2/lenet/fold0.log").read_text()


@pytest.mark.dag
def test_freesound_2019s_notebook_writes_the_dags_scores_from_its_long_clips(fat2019_run):
    """A code competition: the default target rehearsed its notebook, which cut each variable-length
    test clip into the cache's 2-s windows itself (from the WAV files, resampled from 44.1 kHz) and
    wrote a score per label for every clip, the DAG's to the rehearsal's tolerance."""
    run = fat2019_run
    summary = json.loads((run / "results/kernel/rehearsal/summary.json").read_text())
    assert summary["rows_differing"] == 0 and summary["budget_minutes"] == 240
    mine = pd.read_csv(run / "results/kernel/rehearsal/submission.csv").set_index("fname")
    dags = pd.read_csv(run / "results/submission/submission.csv").set_index("fname")
    assert list(mine.columns) == list(LABELS) and len(mine) == len(dags)
    gap = (mine.loc[dags.index, list(LABELS)] - dags[list(LABELS)]).abs().to_numpy()
    assert gap.max() < 1e-3 and np.median(gap) < 1e-5
    windows = pd.read_csv(run / "results/index/test.csv")
    assert (windows["windows"] > 1).any()  # clips the notebook had to cut as the cache did

