"""Experiment tracking: a workflow run's training jobs and blends land in a real MLflow store, once."""

import pandas as pd
import pytest

from wavefold import tracking


def write_job(root, round_, model, fold, val_acc):
    folder = root / f"round{round_}/{model}/fold{fold}"
    folder.mkdir(parents=True)
    curve = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.2], "val_acc": val_acc, "lr": [0.003, 0.002, 0.0]}
    )
    curve.to_csv(folder / "curve.csv", index=False)
    metrics = pd.DataFrame({"label": ["yes", "no", "all"], "recall": [0.9, 0.5, val_acc[-1]]})
    metrics.to_csv(folder / "metrics.csv", index=False)
    settings = {"architecture": model, "lr": 0.003, "augment": {"gain_db": 6.0, "masks": [2, 7]}}
    return tracking.TrainingJob(round_, model, fold, folder / "curve.csv", folder / "metrics.csv", settings)


@pytest.fixture
def workflow(tmp_path):
    jobs = [write_job(tmp_path, 1, m, f, [0.3 + f / 10, 0.5, 0.6 + f / 10]) for m in ("lenet", "res15") for f in (0, 1)]
    candidates = tmp_path / "candidates.csv"
    pd.DataFrame({
        "candidate": ["lenet", "res15", "mean"], "kind": ["model", "model", "mean"],
        "accuracy": [0.6, 0.7, 0.75], "log_loss": [1.1, 0.9, 0.8], "fold_std": [0.01] * 3, "chosen": [False, False, True],
    }).to_csv(candidates, index=False)  # fmt: skip
    return jobs, {1: candidates}


def test_every_job_is_a_child_run_with_its_curve_settings_and_final_accuracy(tmp_path, workflow):
    jobs, candidates = workflow
    store = tracking.Store(f"sqlite:///{tmp_path}/store/mlflow.db", "wavefold-test")
    runs = tracking.log_workflow(store, "demo @ abc", jobs, candidates, {"seed": 42}, {"wavefold.dataset": "demo"})
    assert sorted(runs["kind"]) == ["blend", "training", "training", "training", "training", "workflow"]
    parent = runs.loc[runs["kind"] == "workflow", "run_id"].item()
    client = store.client
    assert client.get_run(parent).data.metrics["cv_accuracy"] == 0.75
    assert client.get_run(parent).data.tags["wavefold.chosen"] == "mean"
    for job in jobs:
        run_id = runs.loc[runs["name"] == f"round1/{job.model}/fold{job.fold}", "run_id"].item()
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags["wavefold.model"] == job.model
        assert run.data.params["augment.gain_db"] == "6.0" and run.data.params["augment.masks"] == "[2, 7]"
        history = client.get_metric_history(run_id, "val_acc")
        expected = pd.read_csv(job.curve)["val_acc"].tolist()
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(zip([1, 2, 3], expected))
        assert run.data.metrics["oof_accuracy"] == expected[-1] and run.data.metrics["recall.no"] == 0.5
    blend_run = client.get_run(runs.loc[runs["kind"] == "blend", "run_id"].item())
    assert blend_run.data.metrics["cv_accuracy.res15"] == 0.7 and blend_run.data.metrics["cv_log_loss.mean"] == 0.8


def test_the_same_results_are_logged_once_and_changed_ones_again(tmp_path, workflow):
    jobs, candidates = workflow
    store = tracking.Store(f"sqlite:///{tmp_path}/mlflow.db", "wavefold-test")
    first = tracking.log_workflow(store, "run", jobs, candidates, {"seed": 42}, {})
    again = tracking.log_workflow(store, "run", jobs, candidates, {"seed": 42}, {})
    assert set(again["kind"]) == {"logged before"} and set(again["run_id"]) == set(first["run_id"])
    pd.read_csv(jobs[0].curve).assign(val_acc=[0.1, 0.2, 0.3]).to_csv(jobs[0].curve, index=False)  # re-trained
    changed = tracking.log_workflow(store, "run", jobs, candidates, {"seed": 42}, {})
    assert not set(changed["run_id"]) & set(first["run_id"])
    assert len(store.client.search_runs([store.experiment_id])) == 2 * len(first)


def test_a_store_that_cannot_be_opened_is_named_with_the_fix(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(tracking.TrackingError, match="tracking.mlflow: false") as error:
        tracking.Store(f"sqlite:///{tmp_path}/file/sub/mlflow.db", "x")
    assert str(tmp_path / "file") in str(error.value)
