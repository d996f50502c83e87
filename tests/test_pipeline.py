"""The whole DAG on the tiny demo — 2 models x 2 folds x 2 rounds — through blend, pseudo-labels,
submission, local score, report and submit (local scorer and the real kaggle client against the
stand-in server), and the reproduce-from-scratch check."""

import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_tree, finished_run, output_of, snakemake, speech
from kaggle_stub import KaggleStub
from wavefold import submission
from wavefold.competitions.tensorflow_speech import LABELS

CONFIG = {
    "demo": {"size": "tiny"},
    "folds": {"n_folds": 2},
    "training": {"run": ["lenet", "matchboxnet"], "tta_shift_ms": [0, 50], "defaults": {"epochs": 1, "batch_size": 32}},
    # One epoch on 400 clips makes shy models: a low threshold, so that round 2 really gets pseudo-labels.
    "pseudo_label": {"rounds": 2, "threshold": 0.2, "agreement": False},
    "blend": {"prior_correction": "em"},
    "submit": {"poll_seconds": 0.2, "wait_minutes": 0.5},
}  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("pipeline"), CONFIG)


def test_the_dag_ends_in_a_checked_scored_submission(pipeline):
    sample = pd.read_csv(next(pipeline.glob("resources/*/extracted/sample_submission.csv")))
    made = pd.read_csv(pipeline / "results/submission/submission.csv")
    assert submission.problems(made, sample, speech()) == []
    score = json.loads((pipeline / "results/submission/local_score.json").read_text())
    assert 0 <= score["public"] <= 1 and 0 <= score["private"] <= 1
    for round_ in (1, 2):
        candidates = pd.read_csv(pipeline / f"results/blend/round{round_}/candidates.csv")
        assert candidates["chosen"].sum() == 1
        assert {"mean", "logloss", "accuracy", "stacking"} <= set(candidates["candidate"])
        oof = pd.read_csv(pipeline / f"results/blend/round{round_}/oof.csv")
        assert list(oof.columns) == ["id", "fold", *LABELS]
        assert np.allclose(oof[list(LABELS)].sum(axis=1), 1, atol=1e-4)


def test_round_two_trains_on_pseudo_labelled_test_clips_only_on_the_training_side(pipeline):
    test_names = set(pd.read_csv(pipeline / "results/index/test.csv")["fname"])
    for fold in (0, 1):
        pseudo = pd.read_csv(pipeline / f"results/pseudo/round1/fold{fold}.csv")
        assert len(pseudo) > 0 and pseudo["label"].isin(LABELS).all() and (pseudo["confidence"] >= 0.2).all()
        log = (pipeline / f"logs/train/round2/lenet/fold{fold}.log").read_text()
        assert f"{len(pseudo)} pseudo-labelled test clips available" in log
        oof = pd.read_csv(pipeline / f"results/train/round2/matchboxnet/fold{fold}/oof.csv")
        assert not set(oof["id"]) & test_names  # the OOF of round 2 is scored on labelled clips only
    summary = pd.read_csv(pipeline / "results/pseudo/round1/summary.csv")
    per_class = summary[summary["label"] != "all"]
    assert (per_class["taken"] <= per_class["cap"]).all() and set(summary["fold"]) == {0, 1}


def test_soft_pseudo_labels_train_round_two_toward_the_tables_probabilities(pipeline, tmp_path):
    """The pseudo-label tables hold the fold blend's probabilities. With pseudo_label.soft, round 2's
    jobs train toward them: on a copy of the run whose fold-0 table keeps its labels but has its
    probabilities flattened (this run's EM makes them one-hot, where soft and hard would agree), the
    soft job learns something else than the hard job did from the same labels; round 1 stays."""
    fold0 = pd.read_csv(pipeline / "results/pseudo/round1/fold0.csv")
    written = pd.read_csv(pipeline / "results/blend/round1/test_fold0.csv")
    np.testing.assert_allclose(fold0[list(LABELS)], written.loc[fold0["row"], list(LABELS)], atol=1e-5)
    workdir = copy_tree(pipeline, tmp_path / "soft")
    flattened = fold0.copy()
    flattened[list(LABELS)] = 0.5 * fold0[list(LABELS)].to_numpy() + 0.5 / len(LABELS)
    flattened.to_csv(workdir / "results/pseudo/round1/fold0.csv", index=False)
    job = "results/train/round2/lenet/fold0"
    soft = {**CONFIG, "pseudo_label": {**CONFIG["pseudo_label"], "soft": True}}
    result = snakemake(workdir, f"{job}/oof.csv", config=soft)
    assert result.returncode == 0, output_of(result)[-3000:]
    ran = re.findall(r"rule (\w+):", output_of(result))
    assert ran == ["train"], ran  # the one round-2 job asked for; nothing of round 1
    assert "soft (the blend's probabilities) targets" in (workdir / "logs/train/round2/lenet/fold0.log").read_text()
    assert not pd.read_csv(workdir / job / "oof.csv").equals(pd.read_csv(pipeline / job / "oof.csv"))


def planned_outputs(result) -> list[str]:
    """Every output file of the jobs a dry run plans."""
    return [name for line in re.findall(r"^\s+output: (.+)$", output_of(result), flags=re.M) for name in line.split(", ")]


def test_pseudo_label_and_cross_round_settings_rerun_what_they_change(pipeline):
    """Every pseudo-label selection setting reaches the step: a new class_share re-selects the
    pseudo-labels and re-trains round 2, never round 1. blend.across_rounds re-blends round 2 only."""
    share = {**CONFIG, "pseudo_label": {**CONFIG["pseudo_label"], "class_share": 0.5}}
    result = snakemake(pipeline, "--dry-run", config=share)
    planned = planned_outputs(result)
    assert "results/pseudo/round1/summary.csv" in planned, output_of(result)[-3000:]
    assert any(p.startswith("results/train/round2/") for p in planned)
    assert not any(p.startswith(("results/train/round1/", "results/blend/round1/")) for p in planned)
    within = {**CONFIG, "blend": {**CONFIG["blend"], "across_rounds": False}}
    planned = planned_outputs(snakemake(pipeline, "--dry-run", config=within))
    assert "results/blend/round2/oof.csv" in planned
    assert not any(p.startswith(("results/train/", "results/pseudo/", "results/blend/round1/")) for p in planned)


def test_round_two_pseudo_labels_of_a_fold_come_from_predictions_that_never_saw_it(pipeline):
    """Fold k's pseudo-labels are the argmax of the blend fitted without fold k, applied to the fold-k
    models' test predictions — recomputed here from those files alone."""
    from wavefold import blend

    folds = pd.read_csv(pipeline / "results/folds/folds.csv")
    truth = blend.truth_table(folds, pd.read_csv(pipeline / "results/folds/silence.csv"))
    fnames = pd.read_csv(pipeline / "results/index/test.csv")["fname"].tolist()
    models = ["lenet", "matchboxnet"]
    settings = blend.BlendSettings(prior_correction="em")
    oof = {m: [pipeline / f"results/train/round1/{m}/fold{k}/oof.csv" for k in (0, 1)] for m in models}
    test = {m: pipeline / f"results/predict/round1/{m}.csv" for m in models}
    trained = {m: blend.trained_prior(pipeline.glob(f"results/train/round1/{m}/fold*/metrics.csv"), LABELS) for m in models}
    for fold in (0, 1):
        # Fold k's models and the OOF rows of the other folds only; fold k's own OOF rows are dropped.
        own = {m: [pipeline / f"results/predict/round1/{m}/fold{fold}.csv"] * 2 for m in models}
        result, _, _ = blend.blend_tables(oof, test, truth, fnames, settings, LABELS, own, trained)
        expected = blend.fold_table(result, fold, fnames)
        written = pd.read_csv(pipeline / f"results/blend/round1/test_fold{fold}.csv")
        np.testing.assert_allclose(written[list(LABELS)], expected[list(LABELS)], atol=1e-5)
        pseudo = pd.read_csv(pipeline / f"results/pseudo/round1/fold{fold}.csv")
        labels = np.array(LABELS)[written[list(LABELS)].to_numpy().argmax(1)]
        assert (labels[pseudo["row"]] == pseudo["label"]).all()
    fold0 = pd.read_csv(pipeline / "results/pseudo/round1/fold0.csv")
    fold1 = pd.read_csv(pipeline / "results/pseudo/round1/fold1.csv")
    assert not fold0.equals(fold1)  # each fold has its own


def test_prior_correction_calibrates_on_oof_then_starts_from_the_oof_mix(pipeline):
    """With blend.em_start: calibrated (the default), the chosen blend is calibrated on its OOF rows, so
    EM starts from the OOF label mix (not the training mix, which 'balanced' puts far lower for
    unknown), and stays within the bound."""
    from wavefold import blend

    truth = blend.truth_table(pd.read_csv(pipeline / "results/folds/folds.csv"),
                              pd.read_csv(pipeline / "results/folds/silence.csv"))  # fmt: skip
    for round_ in (1, 2):
        mix = pd.read_csv(pipeline / f"results/blend/round{round_}/label_mix.csv").set_index("label")
        oof_mix = truth["label"].value_counts(normalize=True).reindex(list(LABELS), fill_value=0)
        np.testing.assert_allclose(mix["trained_under"], oof_mix, atol=1e-3)
        shares = [pd.read_csv(p).set_index("label").loc["unknown", "trained_share"]
                  for p in pipeline.glob(f"results/train/round{round_}/*/fold*/metrics.csv")]  # fmt: skip
        assert max(shares) < mix.loc["unknown", "trained_under"] - 0.2  # balanced training: far below
        # (One epoch makes models that say little: calibrated, their EM estimate stays near the OOF mix.
        # That EM moves toward a shifted mix is tests/test_blend.py's claim, on simulated posteriors.)
        # label_mix.csv holds 4 decimals: a class held at its bound may round just past it.
        assert (mix["em_estimate"] >= mix["trained_under"] / 3 - 1e-4).all()
        assert (mix["em_estimate"] <= mix["trained_under"] * 3 + 1e-4).all()


def test_the_shift_check_is_measured_on_the_models_own_tables_and_logged(pipeline):
    """results/blend/round*/shift.csv is the disagreement of the round's models on the OOF rows and on
    the test clips, recomputed here from their tables; the blend's log gives the verdict."""
    from wavefold import blend

    truth = blend.truth_table(pd.read_csv(pipeline / "results/folds/folds.csv"),
                              pd.read_csv(pipeline / "results/folds/silence.csv"))  # fmt: skip
    fnames = pd.read_csv(pipeline / "results/index/test.csv")["fname"]
    for round_ in (1, 2):
        models = ("lenet", "matchboxnet")
        oof = [pd.concat(map(pd.read_csv, sorted(pipeline.glob(f"results/train/round{round_}/{m}/fold*/oof.csv"))))
               .set_index("id").loc[truth.index, list(LABELS)].to_numpy() for m in models]  # fmt: skip
        test = [pd.read_csv(pipeline / f"results/predict/round{round_}/{m}.csv").set_index("fname")
                .loc[fnames, list(LABELS)].to_numpy() for m in models]  # fmt: skip
        expected = blend.shift_check(np.stack(oof), np.stack(test), 1.25)
        written = pd.read_csv(pipeline / f"results/blend/round{round_}/shift.csv").iloc[0]
        assert written["disagreement_oof"] == pytest.approx(expected.disagreement_oof, abs=1e-4)
        assert written["disagreement_test"] == pytest.approx(expected.disagreement_test, abs=1e-4)
        assert written["ratio"] == pytest.approx(expected.ratio, abs=1e-3) and written["shifted"] == expected.shifted
        log = (pipeline / f"logs/blend/round{round_}.log").read_text()
        assert ("looks SHIFTED" in log) == expected.shifted and f"{expected.ratio:.2f}x" in log


def test_cv_and_hidden_score_side_by_side(pipeline):
    table = pd.read_csv(pipeline / "results/submission/local_scores.csv")
    # Each round: its two models, four blends and the final predictions (the chosen blend after EM);
    # round 2's blend also takes round 1's two models (blend.across_rounds), as themselves.
    assert table.groupby("round").size().to_dict() == {1: 7, 2: 9}
    by_round = table.set_index(["round", "predictions"])
    for model in ("lenet", "matchboxnet"):
        earlier = by_round.loc[(2, f"{model}_round1"), ["cv", "hidden"]]
        assert earlier.tolist() == by_round.loc[(1, model), ["cv", "hidden"]].tolist()
    score = json.loads((pipeline / "results/submission/local_score.json").read_text())
    final = table[table["predictions"].str.endswith("(submitted)")]
    assert final["round"].item() == score["round"] and final["hidden"].item() == pytest.approx(score["all"], abs=1e-4)
    solution = pd.read_csv(next(pipeline.glob("resources/*/solution.csv")))
    labels = pd.read_csv(pipeline / "results/blend/round1/candidate_labels.csv")
    for name, row_name in (("lenet", "lenet"), ("stacking", "blend (stacking)")):  # each its own predictions
        row = table[(table["round"] == 1) & (table["predictions"] == row_name)]
        merged = solution.merge(labels, on="fname")
        assert row["hidden"].item() == pytest.approx((merged["label"] == merged[name]).mean(), abs=1e-4)
    mix = pd.read_csv(pipeline / "results/submission/label_mix.csv").set_index("label")
    made = pd.read_csv(pipeline / "results/submission/submission.csv")
    assert mix.loc["unknown", "truth"] == pytest.approx((solution["label"] == "unknown").mean(), abs=1e-4)
    assert mix.loc["silence", "submission"] == pytest.approx((made["label"] == "silence").mean(), abs=1e-4)


def test_the_submission_is_the_chosen_rounds_blend(pipeline, tmp_path):
    """results/final/ holds the round blend.final_round chose, and the submission is made from it. On a
    copy of the run whose round-2 blend is made wrong on every OOF row (its CV 0), final_round and the
    submission re-run, and round 1's blend is submitted; with final_round: last, round 2's again."""
    rounds = pd.read_csv(pipeline / "results/final/rounds.csv")
    chosen = rounds.loc[rounds["chosen"], "round"].item()
    assert (pipeline / "results/final/test.csv").read_bytes() == (pipeline / f"results/blend/round{chosen}/test.csv").read_bytes()
    for row in rounds.itertuples():  # each round's CV is its chosen blend's, as candidates.csv gives it
        candidates = pd.read_csv(pipeline / f"results/blend/round{row.round}/candidates.csv").set_index("candidate")
        assert candidates["chosen"].idxmax() == row.candidate
        assert candidates.loc[row.candidate, row.metric] == pytest.approx(row.cv, abs=1e-4)

    workdir = copy_tree(pipeline, tmp_path / "worse")
    oof = pd.read_csv(workdir / "results/blend/round2/oof.csv")
    truth = pd.concat([pd.read_csv(workdir / "results/folds/folds.csv"), pd.read_csv(workdir / "results/folds/silence.csv")])
    true = oof["id"].map(truth.set_index("id")["label"]).map(list(LABELS).index).to_numpy()
    oof[list(LABELS)] = np.eye(len(LABELS))[(true + 1) % len(LABELS)]  # every row's top label wrong
    oof.to_csv(workdir / "results/blend/round2/oof.csv", index=False)
    result = snakemake(workdir, "results/submission/submission.csv", config=CONFIG)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert re.findall(r"rule (\w+):", output_of(result)) == ["final_round", "submission"]
    rounds = pd.read_csv(workdir / "results/final/rounds.csv").set_index("round")
    assert rounds.loc[2, "cv"] == 0 and rounds.loc[1, "chosen"] and not rounds.loc[2, "chosen"]
    assert "submitting round 1, not the last round" in (workdir / "logs/final_round.log").read_text()
    blends = {r: (workdir / f"results/blend/round{r}/test.csv").read_bytes() for r in (1, 2)}
    assert blends[1] != blends[2] and (workdir / "results/final/test.csv").read_bytes() == blends[1]
    made = pd.read_csv(workdir / "results/submission/submission.csv")
    round1 = pd.read_csv(workdir / "results/blend/round1/candidate_labels.csv")
    assert (made["label"].to_numpy() == round1["final"].to_numpy()).all()

    last = {**CONFIG, "blend": {**CONFIG["blend"], "final_round": "last"}}
    result = snakemake(workdir, "results/submission/submission.csv", config=last)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert re.findall(r"rule (\w+):", output_of(result)) == ["final_round", "submission"]  # not the blends
    assert (workdir / "results/final/test.csv").read_bytes() == blends[2]
    made = pd.read_csv(workdir / "results/submission/submission.csv")
    round2 = pd.read_csv(workdir / "results/blend/round2/candidate_labels.csv")
    assert (made["label"].to_numpy() == round2["final"].to_numpy()).all()


def test_report_is_built(pipeline):
    for name in ("confusion.png", "confidently_wrong.csv", "label_mix.png", "cv.png", "pseudo_labels.csv"):
        assert (pipeline / "results/report" / name).stat().st_size > 0
    wrong = pd.read_csv(pipeline / "results/report/confidently_wrong.csv")
    assert (wrong["label"] != wrong["predicted"]).all()
    result = snakemake(pipeline, "--report", "results/report.zip", config=CONFIG)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert (pipeline / "results/report.zip").stat().st_size > 10_000
    assert (pipeline / "results/provenance/pip-freeze.txt").read_text().count("torch==") == 1


def test_every_training_job_and_blend_is_in_the_mlflow_store(pipeline):
    from mlflow.tracking import MlflowClient

    runs = pd.read_csv(pipeline / "results/tracking/mlflow_runs.csv")
    assert sorted(runs["kind"].value_counts().items()) == [("blend", 2), ("training", 8), ("workflow", 1)]
    client = MlflowClient(tracking_uri=f"sqlite:///{pipeline}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("wavefold")
    stored = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(stored) == set(runs["name"])
    for round_ in (1, 2):
        for model in ("lenet", "matchboxnet"):
            for fold in (0, 1):
                run = stored[f"round{round_}/{model}/fold{fold}"]
                folder = pipeline / f"results/train/round{round_}/{model}/fold{fold}"
                accuracy = pd.read_csv(folder / "metrics.csv").set_index("label").loc["all", "recall"]
                assert run.data.metrics["oof_accuracy"] == pytest.approx(accuracy)
                assert run.data.params["batch_size"] == "32" and run.data.params["epochs"] == "1"
                history = [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")]
                assert history == pytest.approx(pd.read_csv(folder / "curve.csv")["val_loss"].tolist())
    for round_ in (1, 2):  # each round's blend run holds its shift check
        check = pd.read_csv(pipeline / f"results/blend/round{round_}/shift.csv").iloc[0]
        assert stored[f"round{round_}/blend"].data.metrics["shift.ratio"] == pytest.approx(check["ratio"])
    workflow = stored[runs.loc[runs["kind"] == "workflow", "name"].item()]
    hidden = pd.read_csv(pipeline / "results/submission/local_scores.csv")
    final = hidden[hidden["predictions"].str.endswith("(submitted)")]["hidden"].item()
    assert workflow.data.metrics["hidden_accuracy"] == pytest.approx(final)


def test_tune_runs_trials_resumes_and_writes_settings_the_dag_takes(pipeline):
    assert not (pipeline / "results/tune").exists()  # never part of the default target
    tune = {"model": "matchboxnet", "epochs": 1, "train_share": 0.5}
    result = snakemake(pipeline, "tune", config={**CONFIG, "tune": {**tune, "trials": 2}})
    assert result.returncode == 0, output_of(result)[-3000:]
    assert "rule train:" not in result.stdout + result.stderr  # the finished run is left alone
    first = pd.read_csv(pipeline / "results/tune/trials.csv")
    assert list(first["state"]) == ["COMPLETE", "COMPLETE"]

    result = snakemake(pipeline, "tune", config={**CONFIG, "tune": {**tune, "trials": 3}})
    assert result.returncode == 0, output_of(result)[-3000:]
    assert "2 trials finished, 1 to run" in (pipeline / "logs/tune.log").read_text()
    trials = pd.read_csv(pipeline / "results/tune/trials.csv")
    assert len(trials) == 3 and (trials["state"] == "COMPLETE").all()
    pd.testing.assert_frame_equal(trials.iloc[:2].drop(columns="seconds"), first.drop(columns="seconds"))
    assert trials["lr"].nunique() == 3

    best = trials.loc[trials["accuracy"].idxmax()]
    fragment = pipeline / "results/tune/best.yaml"
    tuned = yaml.safe_load(fragment.read_text())["training"]["models"]["matchboxnet"]
    assert tuned["lr"] == pytest.approx(best["lr"]) and tuned["augment"]["freq_masks"] == best["augment.freq_masks"]
    # Laid over the config, the fragment re-trains the tuned model, and only it.
    overlay = pipeline / "with-tuned.yaml"
    overlay.write_text(yaml.safe_dump(CONFIG))
    result = snakemake(pipeline, "-n", "--configfile", str(REPO / "config/config.yaml"), str(overlay), str(fragment))
    planned = output_of(result)
    assert result.returncode == 0, planned[-3000:]
    assert "results/train/round1/matchboxnet/fold0/model.pt" in planned
    assert "results/train/round1/lenet/fold0/model.pt" not in planned


def _fresh_submit_state(workdir):
    for path in (workdir / "results/submit/last.json", workdir / "results/submissions.csv"):
        path.unlink(missing_ok=True)


def test_submit_to_the_local_scorer_and_refuse_a_duplicate(pipeline):
    _fresh_submit_state(pipeline)
    result = snakemake(pipeline, "submit", config=CONFIG)
    assert result.returncode == 0, output_of(result)[-3000:]
    history = pd.read_csv(pipeline / "results/submissions.csv")
    score = json.loads((pipeline / "results/submission/local_score.json").read_text())
    assert history["to"].tolist() == ["local"] and history["public"].item() == pytest.approx(score["public"])
    (pipeline / "results/submit/last.json").unlink()
    again = snakemake(pipeline, "submit", config=CONFIG)
    assert again.returncode != 0
    assert "was already submitted to local" in output_of(again)
    assert len(pd.read_csv(pipeline / "results/submissions.csv")) == 1


def test_submit_refuses_a_file_changed_after_the_submission_rule(pipeline):
    """A row dropped and a label 'banana' written by hand: never uploaded, never recorded."""
    _fresh_submit_state(pipeline)
    path = pipeline / "results/submission/submission.csv"
    original = path.read_bytes()
    try:
        table = pd.read_csv(path)
        table.loc[0, "label"] = "banana"
        table.drop(index=1).to_csv(path, index=False)
        result = snakemake(pipeline, "submit", config=CONFIG)
    finally:
        path.write_bytes(original)
    assert result.returncode != 0
    assert "is not a valid submission, so it was not uploaded" in output_of(result) and "banana" in output_of(result)
    assert not (pipeline / "results/submissions.csv").exists()


@pytest.fixture
def stub(pipeline):
    solution = pd.read_csv(next(pipeline.glob("resources/*/solution.csv")))

    def scorer(data):
        scores = submission.score(pd.read_csv(io.BytesIO(data)), solution, speech())
        return round(scores["public"], 5), round(scores["private"], 5)

    server = KaggleStub(scorer=scorer).start()
    yield server
    server.stop()


def kaggle_submit(pipeline, stub, tmp_path):
    _fresh_submit_state(pipeline)
    config = {**CONFIG, "submit": {**CONFIG["submit"], "to": "kaggle"}}
    return snakemake(pipeline, "submit", config=config, env=stub.client_env(dict(__import__("os").environ), tmp_path))


def test_submit_through_the_kaggle_client_waits_for_the_score(pipeline, stub, tmp_path):
    result = kaggle_submit(pipeline, stub, tmp_path)
    assert result.returncode == 0, output_of(result)[-3000:]
    for call in ("GetSubmissionLimits", "StartSubmissionUpload", "PUT upload-1", "CreateSubmission", "ListSubmissions"):
        assert call in stub.calls
    assert stub.calls.index("GetSubmissionLimits") < stub.calls.index("StartSubmissionUpload")
    history = pd.read_csv(pipeline / "results/submissions.csv")
    assert history["status"].item() == "complete"
    expected = submission.score(pd.read_csv(pipeline / "results/submission/submission.csv"),
                                pd.read_csv(next(pipeline.glob("resources/*/solution.csv"))), speech())  # fmt: skip
    assert history["public"].item() == pytest.approx(expected["public"], abs=1e-5)
    description = stub.submissions[0]["description"]
    assert description.startswith("wavefold ") and "config " in description and "sha256 " in description
    # The same file again: refused from the server's list even without our own log.
    again = kaggle_submit(pipeline, stub, tmp_path)
    assert again.returncode != 0 and "already among the submissions on Kaggle" in output_of(again)
    assert len(stub.submissions) == 1


def test_a_failed_upload_is_detected(pipeline, stub, tmp_path):
    stub.failing_uploads = 1  # the client prints "Could not submit" and returns normally
    result = kaggle_submit(pipeline, stub, tmp_path)
    assert result.returncode != 0
    assert "did not become a submission" in output_of(result)
    assert not (pipeline / "results/submissions.csv").exists()


@pytest.mark.parametrize(
    "method, code, message, expected",
    [
        ("StartSubmissionUpload", 403, "You must accept this competition's rules before you'll be able to submit.",
         "/rules"),
        ("GetSubmissionLimits", 429, "Too many requests", "after 3 attempts"),
    ],
)  # fmt: skip
def test_kaggle_refusals_are_explained(pipeline, stub, tmp_path, method, code, message, expected):
    stub.fail(method, code, message, times=3)
    result = kaggle_submit(pipeline, stub, tmp_path)
    assert result.returncode != 0
    assert expected in output_of(result) and "Traceback" not in output_of(result).split("wavefold submit")[1][:300]


def test_no_submissions_left_today(pipeline, stub, tmp_path):
    stub.daily_limit = 0
    result = kaggle_submit(pipeline, stub, tmp_path)
    assert result.returncode != 0 and "allows no more submissions" in output_of(result)
    assert "StartSubmissionUpload" not in stub.calls


def test_reproducible_from_scratch(pipeline, tmp_path):
    """A second run from a clean state with the same seed gives byte-identical OOF tables and submission."""
    again = tmp_path / "again"
    again.mkdir()
    result = snakemake(again, config=CONFIG, timeout=1500)
    assert result.returncode == 0, output_of(result)[-5000:]
    compared = ["results/submission/submission.csv", "results/blend/round2/oof.csv", "results/blend/round2/test.csv"]
    compared += [str(p.relative_to(pipeline)) for p in sorted(pipeline.glob("results/train/round*/*/fold*/oof.csv"))]
    assert len(compared) == 11
    for name in compared:
        assert (again / name).read_bytes() == (pipeline / name).read_bytes(), name
    shutil.rmtree(again)
