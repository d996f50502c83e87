"""The whole DAG on the tiny demo — 2 models x 2 folds x 2 rounds, the session's shared ``speech_run``
— through blend, pseudo-labels, submission, local score, report and tracking; what re-runs when a
setting changes; a teammate's tables in the blend; the round choice. Submitting is test_submit.py's."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import SPEECH_RUN, TRACKED, copy_tree, output_of, snakemake, speech
from test_dag import jobs_planned
from wavefold import submission
from wavefold.competitions.tensorflow_speech import LABELS

pytestmark = pytest.mark.dag
CONFIG = SPEECH_RUN
MODELS = CONFIG["training"]["run"]
# The margin the submission must beat always answering the hidden solution's most common label by
# (measured: docs/figures.md, "The test suite's shared run").
MAJORITY_MARGIN = 0.1


@pytest.fixture(scope="module")
def pipeline(speech_run):
    return speech_run


def truth_of(run):
    from wavefold import blend

    return blend.truth_table(pd.read_csv(run / "results/folds/folds.csv"), pd.read_csv(run / "results/folds/silence.csv"))


def test_the_dag_ends_in_a_checked_submission_that_learned_the_words(pipeline):
    sample = pd.read_csv(next(pipeline.glob("resources/*/extracted/sample_submission.csv")))
    made = pd.read_csv(pipeline / "results/submission/submission.csv")
    assert submission.problems(made, sample, speech()) == []
    solution = pd.read_csv(next(pipeline.glob("resources/*/solution.csv")))
    score = json.loads((pipeline / "results/submission/local_score.json").read_text())
    assert score["all"] == pytest.approx((solution.merge(made, on="fname", suffixes=("", "_made"))
                                          .eval("label == label_made")).mean(), abs=1e-4)  # fmt: skip
    majority = solution["label"].value_counts(normalize=True).iloc[0]  # always answering 'unknown'
    assert score["all"] > majority + MAJORITY_MARGIN, (score, majority)
    for round_ in (1, 2):
        candidates = pd.read_csv(pipeline / f"results/blend/round{round_}/candidates.csv")
        assert candidates["chosen"].sum() == 1
        assert {"mean", "logloss", "accuracy", "stacking"} <= set(candidates["candidate"])
        oof = pd.read_csv(pipeline / f"results/blend/round{round_}/oof.csv")
        assert list(oof.columns) == ["id", "fold", *LABELS]
        assert np.allclose(oof[list(LABELS)].sum(axis=1), 1, atol=1e-4)


def test_every_model_predicts_every_test_clip_and_scores_its_own_fold_only(pipeline):
    """Each model's test table covers the test index in order; each fold job's OOF rows are exactly its
    fold's clips and silence examples, nothing else (no leakage between folds)."""
    folds = pd.read_csv(pipeline / "results/folds/folds.csv")
    silence = pd.read_csv(pipeline / "results/folds/silence.csv")
    test_index = pd.read_csv(pipeline / "results/index/test.csv")
    for model in MODELS:
        predictions = pd.read_csv(pipeline / f"results/predict/round1/{model}.csv")
        assert predictions["fname"].tolist() == test_index["fname"].tolist()
        assert np.allclose(predictions[list(LABELS)].sum(axis=1), 1, atol=1e-4)
        for fold in (0, 1):
            oof = pd.read_csv(pipeline / f"results/train/round1/{model}/fold{fold}/oof.csv")
            assert list(oof.columns) == ["id", "fold", *LABELS] and (oof["fold"] == fold).all()
            expected = folds.loc[folds["fold"] == fold, "id"].tolist() + silence.loc[silence["fold"] == fold, "id"].tolist()
            assert oof["id"].tolist() == expected
            curve = pd.read_csv(pipeline / f"results/train/round1/{model}/fold{fold}/curve.csv")
            assert len(curve) == CONFIG["training"]["defaults"]["epochs"]


def test_round_two_trains_on_pseudo_labelled_test_clips_only_on_the_training_side(pipeline):
    test_names = set(pd.read_csv(pipeline / "results/index/test.csv")["fname"])
    summary = pd.read_csv(pipeline / "results/pseudo/round1/summary.csv")
    for fold in (0, 1):
        pseudo = pd.read_csv(pipeline / f"results/pseudo/round1/fold{fold}.csv")
        bars = summary[(summary["fold"] == fold) & (summary["label"] != "all")].set_index("label")["bar"]
        assert len(pseudo) > 0 and pseudo["label"].isin(LABELS).all()
        assert (pseudo["confidence"].to_numpy() >= bars.loc[pseudo["label"]].to_numpy() - 1e-6).all()
        log = (pipeline / f"logs/train/round2/lenet/fold{fold}.log").read_text()
        assert f"{len(pseudo)} pseudo-labelled test clips available" in log
        oof = pd.read_csv(pipeline / f"results/train/round2/matchboxnet/fold{fold}/oof.csv")
        assert not set(oof["id"]) & test_names  # the OOF of round 2 is scored on labelled clips only
    per_class = summary[summary["label"] != "all"]
    assert (per_class["taken"] <= per_class["cap"]).all() and set(summary["fold"]) == {0, 1}


def test_soft_pseudo_labels_train_round_two_toward_the_tables_probabilities(pipeline, tmp_path):
    """The pseudo-label tables hold the fold blend's probabilities. With pseudo_label.soft, round 2's
    jobs train toward them: on a copy of the run whose fold-0 table keeps its labels but has its
    probabilities flattened, the soft job learns something else than the hard job did from the same
    labels; round 1 stays."""
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
    within = {**CONFIG, "blend": {**CONFIG.get("blend", {}), "across_rounds": False}}
    planned = planned_outputs(snakemake(pipeline, "--dry-run", config=within))
    assert "results/blend/round2/oof.csv" in planned
    assert not any(p.startswith(("results/train/", "results/pseudo/", "results/blend/round1/")) for p in planned)
    # How hard the Kaggle client tries changes no result: nothing re-runs, not even the download; the
    # provenance records the settings (and so does each invocation's run in MLflow, re-running nothing).
    patient = {**CONFIG, "kaggle": {"retries": 9, "backoff_seconds": 1}}
    assert jobs_planned(snakemake(pipeline, "--dry-run", config=patient)) == {"provenance", "all"}


def test_round_two_pseudo_labels_of_a_fold_come_from_predictions_that_never_saw_it(pipeline):
    """Fold k's pseudo-labels are the argmax of the blend chosen and fitted without fold k, applied to
    the fold-k models' test predictions — recomputed here from those files alone."""
    from wavefold import blend

    truth = truth_of(pipeline)
    fnames = pd.read_csv(pipeline / "results/index/test.csv")["fname"].tolist()
    settings = blend.BlendSettings()
    oof = {m: [pipeline / f"results/train/round1/{m}/fold{k}/oof.csv" for k in (0, 1)] for m in MODELS}
    test = {m: pipeline / f"results/predict/round1/{m}.csv" for m in MODELS}
    trained = {m: blend.trained_prior(pipeline.glob(f"results/train/round1/{m}/fold*/metrics.csv"), LABELS) for m in MODELS}
    for fold in (0, 1):
        # Fold k's models and the OOF rows of the other folds only; fold k's own OOF rows are dropped.
        own = {m: [pipeline / f"results/predict/round1/{m}/fold{fold}.csv"] * 2 for m in MODELS}
        result, _, _ = blend.blend_tables(oof, test, truth, fnames, settings, LABELS, own, trained)
        expected = blend.fold_table(result, fold, fnames)
        written = pd.read_csv(pipeline / f"results/blend/round1/test_fold{fold}.csv")
        np.testing.assert_allclose(written[list(LABELS)], expected[list(LABELS)], atol=1e-5)
        assert f"fold {fold}'s pseudo-label blend (chosen and fitted without fold {fold}'s labels): " \
               f"{result.fold_choices[fold]}" in (pipeline / "logs/blend/round1.log").read_text()  # fmt: skip
        pseudo = pd.read_csv(pipeline / f"results/pseudo/round1/fold{fold}.csv")
        labels = np.array(LABELS)[written[list(LABELS)].to_numpy().argmax(1)]
        assert (labels[pseudo["row"]] == pseudo["label"]).all()
    fold0 = pd.read_csv(pipeline / "results/pseudo/round1/fold0.csv")
    fold1 = pd.read_csv(pipeline / "results/pseudo/round1/fold1.csv")
    assert not fold0.equals(fold1)  # each fold has its own


def test_prior_correction_in_the_dag_is_em_from_the_calibrated_oof_mix(pipeline, tmp_path):
    """blend.prior_correction: em on a copy of the run re-runs round 1's blend only, and its label mix is
    what EM gives, recomputed here from the round's own tables: started from the OOF rows' label mix
    (em_start: calibrated), bounded at em_max_ratio, and moving the test's labels (a rule that ignored
    the setting, or started EM elsewhere, would write other numbers)."""
    from wavefold import blend

    workdir = copy_tree(pipeline, tmp_path / "em")
    em = {**CONFIG, "blend": {"prior_correction": "em", "em_max_ratio": 2.0}}
    result = snakemake(workdir, "results/blend/round1/label_mix.csv", config=em)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert re.findall(r"rule (\w+):", output_of(result)) == ["blend"]
    truth = truth_of(pipeline)
    fnames = pd.read_csv(pipeline / "results/index/test.csv")["fname"].tolist()
    oof = {m: [pipeline / f"results/train/round1/{m}/fold{k}/oof.csv" for k in (0, 1)] for m in MODELS}
    test = {m: pipeline / f"results/predict/round1/{m}.csv" for m in MODELS}
    settings = blend.BlendSettings(prior_correction="em", em_max_ratio=2.0)
    expected, _, _ = blend.blend_tables(oof, test, truth, fnames, settings, LABELS)
    mix = pd.read_csv(workdir / "results/blend/round1/label_mix.csv").set_index("label")
    oof_mix = truth["label"].value_counts(normalize=True).reindex(list(LABELS), fill_value=0)
    np.testing.assert_allclose(mix["trained_under"], oof_mix, atol=1e-3)
    np.testing.assert_allclose(mix["em_estimate"], expected.test_prior, atol=1e-3)
    np.testing.assert_allclose(mix["em_unbounded"], expected.em_unbounded, atol=1e-3)
    written = pd.read_csv(workdir / "results/blend/round1/test.csv")[list(LABELS)].to_numpy()
    np.testing.assert_allclose(written, expected.test, atol=1e-5)
    before = pd.read_csv(pipeline / "results/blend/round1/test.csv")[list(LABELS)].to_numpy()
    assert not np.allclose(written, before, atol=1e-3)  # EM moved the test probabilities


def test_the_shift_check_is_measured_on_the_models_own_tables_and_logged(pipeline):
    """results/blend/round*/shift.csv is the disagreement of the round's models on the OOF rows and on
    the test clips, recomputed here from their tables; the blend's log gives the verdict."""
    from wavefold import blend

    truth = truth_of(pipeline)
    fnames = pd.read_csv(pipeline / "results/index/test.csv")["fname"]
    for round_ in (1, 2):
        oof = [pd.concat(map(pd.read_csv, sorted(pipeline.glob(f"results/train/round{round_}/{m}/fold*/oof.csv"))))
               .set_index("id").loc[truth.index, list(LABELS)].to_numpy() for m in MODELS]  # fmt: skip
        test = [pd.read_csv(pipeline / f"results/predict/round{round_}/{m}.csv").set_index("fname")
                .loc[fnames, list(LABELS)].to_numpy() for m in MODELS]  # fmt: skip
        if round_ == 2:  # round 2's blend also takes round 1's models (blend.across_rounds)
            oof += [pd.concat(map(pd.read_csv, sorted(pipeline.glob(f"results/train/round1/{m}/fold*/oof.csv"))))
                    .set_index("id").loc[truth.index, list(LABELS)].to_numpy() for m in MODELS]  # fmt: skip
            test += [pd.read_csv(pipeline / f"results/predict/round1/{m}.csv").set_index("fname")
                     .loc[fnames, list(LABELS)].to_numpy() for m in MODELS]  # fmt: skip
        expected = blend.shift_check(np.stack(oof), np.stack(test), 1.25)
        written = pd.read_csv(pipeline / f"results/blend/round{round_}/shift.csv").iloc[0]
        assert written["disagreement_oof"] == pytest.approx(expected.disagreement_oof, abs=1e-4)
        assert written["disagreement_test"] == pytest.approx(expected.disagreement_test, abs=1e-4)
        assert written["ratio"] == pytest.approx(expected.ratio, abs=1e-3) and written["shifted"] == expected.shifted
        assert expected.describe() in (pipeline / f"logs/blend/round{round_}.log").read_text()


def test_every_candidate_is_scored_on_the_hidden_solution_beside_its_cv(pipeline):
    table = pd.read_csv(pipeline / "results/submission/local_scores.csv")
    # Each round: its two models, four blends and the final predictions (the chosen blend as submitted);
    # round 2's blend also takes round 1's two models (blend.across_rounds), as themselves.
    assert table.groupby("round").size().to_dict() == {1: 7, 2: 9}
    by_round = table.set_index(["round", "predictions"])
    for model in MODELS:
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

    last = {**CONFIG, "blend": {**CONFIG.get("blend", {}), "final_round": "last"}}
    result = snakemake(workdir, "results/submission/submission.csv", config=last)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert re.findall(r"rule (\w+):", output_of(result)) == ["final_round", "submission"]  # not the blends
    assert (workdir / "results/final/test.csv").read_bytes() == blends[2]
    made = pd.read_csv(workdir / "results/submission/submission.csv")
    round2 = pd.read_csv(workdir / "results/blend/round2/candidate_labels.csv")
    assert (made["label"].to_numpy() == round2["final"].to_numpy()).all()


def test_the_reports_tables_are_the_final_oof_tables_own(pipeline, tmp_path):
    """The confusion matrix, the per-class accuracy and the confidently wrong clips, recomputed from
    the chosen round's OOF table and the folds' labels; the report zip is built from the run."""
    oof = pd.read_csv(pipeline / "results/final/oof.csv")
    truth = truth_of(pipeline).loc[oof["id"], "label"].to_numpy()
    probabilities = oof[list(LABELS)].to_numpy()
    predicted = np.array(LABELS)[probabilities.argmax(1)]
    matrix = pd.read_csv(pipeline / "results/report/confusion.csv", index_col=0)
    assert list(matrix.index) == list(matrix.columns) == list(LABELS)
    for true_label in LABELS:
        for predicted_label in LABELS:
            count = int(((truth == true_label) & (predicted == predicted_label)).sum())
            assert matrix.loc[true_label, predicted_label] == count, (true_label, predicted_label)
    per_class = pd.read_csv(pipeline / "results/report/per_class.csv").set_index("label")
    for label in LABELS:
        mine = truth == label
        assert per_class.loc[label, "clips"] == mine.sum()
        assert per_class.loc[label, "accuracy"] == pytest.approx((predicted[mine] == label).mean() if mine.any() else 0,
                                                                 abs=1e-4)  # fmt: skip
    wrong = pd.read_csv(pipeline / "results/report/confidently_wrong.csv")
    is_wrong = predicted != truth
    top = np.sort(probabilities.max(1)[is_wrong])[::-1][: len(wrong)]
    np.testing.assert_allclose(wrong["confidence"], top, atol=1e-4)  # the most confident of the wrong ones
    rows = oof.set_index("id").loc[wrong["id"]]
    assert (wrong["label"].to_numpy() == truth_of(pipeline).loc[wrong["id"], "label"].to_numpy()).all()
    assert (wrong["predicted"].to_numpy() == rows[list(LABELS)].idxmax(axis=1).to_numpy()).all()
    p_label = [rows.loc[i, label] for i, label in zip(wrong["id"], wrong["label"])]
    np.testing.assert_allclose(wrong["p_label"], p_label, atol=1e-4)

    workdir = copy_tree(pipeline, tmp_path / "report")
    result = snakemake(workdir, "--report", "results/report.zip", config=CONFIG)
    assert result.returncode == 0, output_of(result)[-3000:]
    import zipfile

    with zipfile.ZipFile(workdir / "results/report.zip") as report:
        names = " ".join(report.namelist())
    for name in ("confusion.png", "confusion.csv", "per_class.csv", "confidently_wrong.csv", "local_scores.csv"):
        assert name in names, name
    assert (pipeline / "results/provenance/pip-freeze.txt").read_text().count("torch==") == 1


def test_provenance_and_the_demos_manifest_name_the_espeak_ng_that_spoke_it(pipeline):
    from wavefold.competitions.tensorflow_speech_demo import espeak_installation

    version = espeak_installation()[0]
    manifest = json.loads(next(pipeline.glob("resources/demo-*/manifest.json")).read_text())
    assert manifest["espeak_ng"] == version and manifest["seed"] == 42 and manifest["size"] == "tiny"
    assert f"espeak-ng {version}" in (pipeline / "results/provenance/system.txt").read_text()


def test_every_job_logged_itself_live_under_the_invocations_run(pipeline):
    """Each training job's run: FINISHED, under the invocation's parent, its settings, each epoch
    stamped when it ended (the after-the-fact writer gives every epoch one time), its fold accuracy
    and files. The blends and the parent's CV and hidden score; the track rule found every job logged."""
    from mlflow.tracking import MlflowClient

    runs = pd.read_csv(pipeline / "results/tracking/mlflow_runs.csv")
    assert sorted(runs["kind"].value_counts().items()) == [("blend", 2), ("training", 8), ("workflow", 1)]
    assert set(runs.loc[runs["kind"] != "workflow", "logged"]) == {"live or before"}  # none left to the track rule
    client = MlflowClient(tracking_uri=f"sqlite:///{pipeline}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("wavefold")
    stored = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    workflow = client.get_run(runs.loc[runs["kind"] == "workflow", "run_id"].item())
    assert workflow.info.status == "FINISHED"  # ended by the Snakefile's onsuccess
    assert len(stored) == 11 and workflow.data.tags["wavefold.invocation"]
    epochs = CONFIG["training"]["defaults"]["epochs"]
    truth = truth_of(pipeline)
    for round_ in (1, 2):
        for model in MODELS:
            for fold in (0, 1):
                run = stored[f"round{round_}/{model}/fold{fold}"]
                assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == workflow.info.run_id
                folder = pipeline / f"results/train/round{round_}/{model}/fold{fold}"
                oof = pd.read_csv(folder / "oof.csv").set_index("id")
                accuracy = (oof[list(LABELS)].idxmax(axis=1) == truth.loc[oof.index, "label"]).mean()
                assert run.data.metrics["fold_accuracy"] == pytest.approx(accuracy)
                assert run.data.params["batch_size"] == "32" and run.data.params["epochs"] == str(epochs)
                points = sorted(client.get_metric_history(run.info.run_id, "val_loss"), key=lambda m: m.step)
                assert [m.value for m in points] == pytest.approx(pd.read_csv(folder / "curve.csv")["val_loss"].tolist())
                stamps = [m.timestamp for m in points]
                # stamped when it happened, not when the background thread reached the store
                assert workflow.info.start_time <= run.info.start_time <= stamps[0] <= stamps[-1] <= run.info.end_time
                assert stamps == sorted(set(stamps))
                assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"model.pt", "curve.csv", "metrics.csv"}
    for round_ in (1, 2):  # each round's blend run holds its shift check, and started after its round's training
        check = pd.read_csv(pipeline / f"results/blend/round{round_}/shift.csv").iloc[0]
        blend_run = stored[f"round{round_}/blend"]
        assert blend_run.data.metrics["shift.ratio"] == pytest.approx(check["ratio"])
        trained = max(stored[f"round{round_}/{m}/fold{f}"].info.end_time for m in MODELS for f in (0, 1))
        assert blend_run.info.start_time >= trained
    submitted = json.loads((pipeline / "results/submission/local_score.json").read_text())
    assert workflow.data.metrics["hidden_accuracy"] == pytest.approx(submitted["all"])  # as score_local logged it
    chosen = pd.read_csv(pipeline / "results/final/rounds.csv").query("chosen")
    assert workflow.data.tags["wavefold.final_round"] == str(chosen["round"].item())
    assert "submission.csv" in {a.path for a in client.list_artifacts(workflow.info.run_id)}


def test_a_teammates_tables_join_the_blend_and_a_malformed_one_is_refused(pipeline, tmp_path):
    """blend.external: a teammate's OOF and test tables (the workflow's format, our folds) join round 1's
    blend through the real snakemake — a candidate of their own, a weight in every weighted blend, and
    a blend that changes. A table missing a label column is refused, naming its file."""
    workdir = copy_tree(pipeline, tmp_path / "team")
    truth = truth_of(pipeline)
    rng = np.random.default_rng(0)
    # A teammate's model: right on 70% of the rows, its own errors (not a copy of ours).
    oof = pd.concat(map(pd.read_csv, sorted(pipeline.glob("results/train/round1/lenet/fold*/oof.csv"))))
    y = truth.loc[oof["id"], "label"].map(list(LABELS).index).to_numpy()
    guess = np.where(rng.random(len(y)) < 0.7, y, rng.integers(0, len(LABELS), len(y)))
    oof[list(LABELS)] = 0.8 * np.eye(len(LABELS))[guess] + 0.2 / len(LABELS)
    oof.to_csv(tmp_path / "alice_oof.csv", index=False)
    test = pd.read_csv(pipeline / "results/predict/round1/lenet.csv")
    test[list(LABELS)] = rng.dirichlet(np.ones(len(LABELS)), len(test))
    test.to_csv(tmp_path / "alice_test.csv", index=False)
    team = {**CONFIG, "blend": {**CONFIG.get("blend", {}), "external": {
        "alice": {"oof": str(tmp_path / "alice_oof.csv"), "test": str(tmp_path / "alice_test.csv")}}}}
    target = "results/blend/round1/candidates.csv"
    result = snakemake(workdir, target, config=team)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert re.findall(r"rule (\w+):", output_of(result)) == ["blend"]  # no training re-runs for a teammate
    candidates = pd.read_csv(workdir / target).set_index("candidate")
    assert candidates.loc["alice", "kind"] == "model"
    assert candidates.loc["alice", "accuracy"] == pytest.approx((guess == y).mean(), abs=0.01)
    weights = pd.read_csv(workdir / "results/blend/round1/weights.csv").set_index("model")
    assert "alice" in weights.index and weights.loc["alice", "logloss"] > 0
    assert (workdir / "results/blend/round1/oof.csv").read_bytes() != (pipeline / "results/blend/round1/oof.csv").read_bytes()

    test.drop(columns="yes").to_csv(tmp_path / "alice_test.csv", index=False)
    result = snakemake(workdir, target, config=team)
    assert result.returncode != 0
    assert f"{tmp_path / 'alice_test.csv'}: missing columns ['yes']" in output_of(result)
    assert "Traceback" not in output_of(result).split("wavefold blend")[-1][:600]


def test_tune_runs_trials_resumes_and_writes_settings_the_dag_takes(pipeline, tmp_path, workflow):
    assert not (pipeline / "results/tune").exists()  # never part of the default target
    workdir = copy_tree(pipeline, tmp_path / "tune")
    tune = {"model": "matchboxnet", "epochs": 1, "train_share": 0.5}
    result = snakemake(workdir, "tune", config={**CONFIG, **TRACKED, "tune": {**tune, "trials": 2}})
    assert result.returncode == 0, output_of(result)[-3000:]
    assert "rule train:" not in result.stdout + result.stderr  # the finished run is left alone
    first = pd.read_csv(workdir / "results/tune/trials.csv")
    assert list(first["state"]) == ["COMPLETE", "COMPLETE"]

    result = snakemake(workdir, "tune", config={**CONFIG, **TRACKED, "tune": {**tune, "trials": 3}})
    assert result.returncode == 0, output_of(result)[-3000:]
    assert "2 trials finished, 1 to run" in (workdir / "logs/tune.log").read_text()
    trials = pd.read_csv(workdir / "results/tune/trials.csv")
    assert len(trials) == 3 and (trials["state"] == "COMPLETE").all()
    pd.testing.assert_frame_equal(trials.iloc[:2].drop(columns="seconds"), first.drop(columns="seconds"))
    assert trials["lr"].nunique() == 3
    # Each trial logged as it ran: a run under its study's, its settings, its score, its curve.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("wavefold").experiment_id
    logged = {r.info.run_name: r for r in client.search_runs([experiment], "tags.`wavefold.kind` = 'trial'")}
    assert sorted(logged) == [f"tune/matchboxnet/trial{n}" for n in range(3)]
    for row in trials.itertuples():
        run = logged[f"tune/matchboxnet/trial{row.trial}"]
        assert run.info.status == "FINISHED" and run.data.metrics["fold_accuracy"] == pytest.approx(row.accuracy)
        assert float(run.data.params["lr"]) == pytest.approx(row.lr)
        assert client.get_run(run.data.tags["mlflow.parentRunId"]).info.run_name == "tune/matchboxnet"
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 1  # its one epoch

    best = trials.loc[trials["accuracy"].idxmax()]
    fragment = workdir / "results/tune/best.yaml"
    tuned = yaml.safe_load(fragment.read_text())["training"]["models"]["matchboxnet"]
    assert tuned["lr"] == pytest.approx(best["lr"]) and tuned["augment"]["freq_masks"] == best["augment.freq_masks"]
    # Laid over the config, the fragment re-trains the tuned model, and only it.
    overlay = workdir / "with-tuned.yaml"
    overlay.write_text(yaml.safe_dump(CONFIG))
    result = snakemake(workdir, "-n", "--configfile", str(workflow / "config/config.yaml"), str(overlay), str(fragment))
    planned = output_of(result)
    assert result.returncode == 0, planned[-3000:]
    assert "results/train/round1/matchboxnet/fold0/model.pt" in planned
    assert "results/train/round1/lenet/fold0/model.pt" not in planned
