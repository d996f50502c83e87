"""Experiment tracking in a real MLflow store: live from each job (epochs as they end, FAILED or KILLED
runs with the epochs they did, a resumed job in its own run, one parent per invocation), and after
the fact for what no job logged, once, with metric names from the competition."""

import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import REPO, SPEECH_BACKBONE, TRACKED, from_backbone, snakemake_started
from tones import job_paths, tones
from wavefold import competitions
from wavefold.settings.training import TrainSettings
from wavefold.tracking import Store, TrackingError, TrackingSettings, live
from wavefold.tracking.after import Blend, TrainingJob, log_missing
from wavefold.training import loop

SPEECH = competitions.get("tensorflow-speech-recognition-challenge")
FREESOUND = competitions.get("freesound-audio-tagging")  # MAP@3
FREESOUND_2019 = competitions.get("freesound-audio-tagging-2019")  # lwlrap, multi-label


def context_in(folder, invocation="inv-1", **settings):
    uri = f"sqlite:///{folder}/mlruns/mlflow.db"
    environ = {live.ENV_INVOCATION: invocation, live.ENV_COMMIT: "abc123", live.ENV_DATASET: "demo",
               live.ENV_STARTED: str(int(time.time() * 1000))}  # fmt: skip
    return live.Context(TrackingSettings(uri=uri, **settings), {"seed": 42}, folder, environ)


def all_runs(context) -> list:
    client = MlflowClient(tracking_uri=context.settings.uri)
    experiment = client.get_experiment_by_name(context.settings.experiment)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def runs_of(context) -> dict:
    """The runs by name (of runs of one name, the latest)."""
    return {r.info.run_name: r for r in sorted(all_runs(context), key=lambda r: r.info.start_time)}


def history(context, run, metric="train_loss") -> list:
    return sorted(MlflowClient(tracking_uri=context.settings.uri).get_metric_history(run.info.run_id, metric),
                  key=lambda m: m.step)  # fmt: skip


# --------------------------------------------------------------------------- after the fact


def write_job(root, competition, round_, model, fold, rng):
    folder = root / f"round{round_}/{model}/fold{fold}"
    folder.mkdir(parents=True)
    curve = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.2], "val_loss": [1.9, 1.6, 1.4]})
    curve.to_csv(folder / "curve.csv", index=False)
    labels = list(competition.labels)
    recall = pd.DataFrame({"label": [*labels[:2], "all"], "recall": [0.9, 0.5, 0.7]})
    recall.to_csv(folder / "metrics.csv", index=False)
    ids = [f"clip{fold}_{i}" for i in range(30)]
    oof = pd.DataFrame(rng.dirichlet(np.ones(len(labels)), len(ids)), columns=labels).assign(id=ids)
    oof.to_csv(folder / "oof.csv", index=False)
    return TrainingJob(round_, model, fold, folder / "curve.csv", folder / "metrics.csv", folder / "oof.csv",
                       {"architecture": model, "augment": {"gain_db": 6.0}})  # fmt: skip


def write_round(root, competition, rng):
    jobs = [write_job(root, competition, 1, m, f, rng) for m in ("lenet", "res15") for f in (0, 1)]
    oofs = pd.concat(pd.read_csv(job.oof) for job in jobs[:2])
    truth = pd.DataFrame({"id": oofs["id"], "label": rng.choice(competition.labels, len(oofs))}).set_index("id")
    metric = competition.metric_name
    candidates = root / "candidates.csv"
    pd.DataFrame({"candidate": ["lenet", "res15", "mean"], metric: [0.6, 0.7, 0.75], "log_loss": [1.1, 0.9, 0.8],
                  "chosen": [False, False, True]}).to_csv(candidates, index=False)  # fmt: skip
    shift = root / "shift.csv"
    pd.DataFrame({"disagreement_oof": [0.1], "disagreement_test": [0.2], "ratio": [2.0]}).to_csv(shift, index=False)
    return jobs, truth, [Blend(1, candidates, shift)]


@pytest.mark.parametrize("competition", [SPEECH, FREESOUND, FREESOUND_2019], ids=["accuracy", "map3", "lwlrap"])
def test_what_no_job_logged_is_logged_after_the_fact_once_named_by_the_competitions_metric(tmp_path, competition):
    rng = np.random.default_rng(0)
    jobs, truth, blends = write_round(tmp_path, competition, rng)
    context = context_in(tmp_path)
    store = Store(context.settings.uri, context.settings.experiment)
    # One job logged itself live: a run tagged with its outputs' digest.
    live_run = store.start("round1/lenet/fold0", {live.OUTPUTS_TAG: live.outputs_digest("round1/lenet/fold0", jobs[0].outputs)})
    store.end(live_run)
    first = log_missing(store, context, competition, jobs, truth, blends, 1)
    assert first.set_index("name")["logged"].to_dict() == {
        "workflow": "now", "round1/lenet/fold0": "live or before", "round1/lenet/fold1": "now",
        "round1/res15/fold0": "now", "round1/res15/fold1": "now", "round1/blend": "now"}  # fmt: skip
    runs = runs_of(context)
    assert len(runs) == 6  # the parent, the live job's, three jobs and the blend: the live job not twice
    parent = runs[next(n for n in runs if n.startswith("demo @ abc123"))]
    metric = competition.metric_name
    assert parent.data.metrics == {f"cv_{metric}": 0.75} and parent.data.tags["wavefold.chosen"] == "mean"
    assert parent.data.tags[live.INVOCATION_TAG] == "inv-1" and parent.data.params["seed"] == "42"
    job = runs["round1/res15/fold1"]
    assert job.data.tags["mlflow.parentRunId"] == parent.info.run_id and job.data.params["augment.gain_db"] == "6.0"
    oof = pd.read_csv(jobs[3].oof).set_index("id")
    y = competition.truth(truth.loc[oof.index, "label"])
    expected = np.mean(competition.metric_rows(oof[list(competition.labels)].to_numpy(), y))
    assert job.data.metrics[f"fold_{metric}"] == pytest.approx(expected)
    assert job.data.metrics[f"recall.{competition.labels[1]}"] == 0.5
    assert [(m.step, m.value) for m in history(context, job, "val_loss")] == [(1, 1.9), (2, 1.6), (3, 1.4)]
    assert runs["round1/blend"].data.metrics[f"cv_{metric}.res15"] == 0.7
    assert runs["round1/blend"].data.metrics["shift.ratio"] == 2.0

    again = log_missing(store, context, competition, jobs, truth, blends, 1)
    assert set(again["logged"].drop(0)) == {"live or before"} and len(all_runs(context)) == 6
    pd.read_csv(jobs[1].curve).assign(val_loss=[1.0, 0.9, 0.8]).to_csv(jobs[1].curve, index=False)  # re-trained
    changed = log_missing(store, context, competition, jobs, truth, blends, 1)
    assert changed.set_index("name").loc["round1/lenet/fold1", "logged"] == "now" and len(all_runs(context)) == 7


def test_a_store_that_cannot_be_opened_is_named_with_the_fix(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(TrackingError, match="tracking.mlflow: false") as error:
        Store(f"sqlite:///{tmp_path}/file/sub/mlflow.db", "x")
    assert str(tmp_path / "file") in str(error.value)


OPENER = """
import sys, time
from pathlib import Path
from wavefold.tracking import Store
import mlflow.store.tracking.sqlalchemy_store  # imported before the start: the openers race the store alone
folder = Path(sys.argv[1])
(folder / f"ready{sys.argv[2]}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
store = Store(f"sqlite:///{folder}/mlruns/mlflow.db", "wavefold")
store.end(store.start(f"job{sys.argv[2]}", {}))
"""


def test_jobs_that_open_a_new_store_at_once_all_log_to_it(tmp_path):
    """Six jobs opening the same new SQLite store at the same moment (parallel jobs' first epochs, two
    SLURM jobs starting together): all log their run, and the store opens afterwards. Without the lock
    around opening, MLflow's table migrations run side by side and leave it half-migrated."""
    environment = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    openers = [subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path), str(k)], env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in range(6)]  # fmt: skip
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready*"))) < len(openers) and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outputs = [opener.communicate(timeout=300)[0] for opener in openers]
    assert [opener.returncode for opener in openers] == [0] * len(openers), "\n".join(outputs)[-3000:]
    store = Store(f"sqlite:///{tmp_path}/mlruns/mlflow.db", "wavefold")
    assert sorted(run.info.run_name for run in store.search("")) == [f"job{k}" for k in range(6)]


# --------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(2)
    return tones(per_class=16)


SHORT = TrainSettings(architecture="lenet", epochs=4, batch_size=8, silence_share=0.0, offline_share=0.0)


def test_a_job_logs_each_epoch_as_it_ends_and_a_failing_job_leaves_a_failed_run_with_its_epochs(task, tmp_path):
    """Real train_fold under live.tracked: while epoch 3 trains, a reader of the store already sees
    epochs 1 and 2 (not at the end of the job); the job then fails in its third epoch's end and its
    run is FAILED, holding the three epochs it did, each stamped when it ended, under the invocation's parent."""
    context = context_in(tmp_path)
    seen_while_training = {}

    def fail_in_epoch_3(run):
        def on_epoch(row):
            run.epoch(row)
            if row["epoch"] == 2:  # wait (bounded) for a reader to see what the job logged so far
                deadline = time.time() + 60
                while time.time() < deadline and len(seen_while_training.get("steps", [])) < 2:
                    found = runs_of(context).get("round1/lenet/fold0")
                    seen_while_training["steps"] = [m.step for m in history(context, found)] if found else []
                    time.sleep(0.1)
            if row["epoch"] == 3:
                raise RuntimeError("CUDA out of memory (a stand-in)")

        return on_epoch

    with pytest.raises(RuntimeError, match="out of memory"):
        with live.tracked(context, "round1/lenet/fold0", {"wavefold.kind": "training"}, {"lr": "0.003"}) as run:
            loop.train_fold(task.fold(0), SHORT, 1, job_paths(tmp_path / "job"), torch.device("cpu"), 0, "id",
                            on_epoch=fail_in_epoch_3(run))  # fmt: skip
    assert seen_while_training["steps"] == [1, 2]
    runs = runs_of(context)
    failed = runs["round1/lenet/fold0"]
    assert failed.info.status == "FAILED" and failed.data.params["lr"] == "0.003"
    points = history(context, failed)
    assert [m.step for m in points] == [1, 2, 3]
    stamps = [m.timestamp for m in points]
    # when each epoch ended, not one time; the run from when the job started (the store is reached later)
    assert failed.info.start_time <= stamps[0] < stamps[1] < stamps[2] <= failed.info.end_time
    parent = next(r for name, r in runs.items() if name != "round1/lenet/fold0")
    assert failed.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.status == "RUNNING"  # until the invocation ends (the Snakefile's onerror/onsuccess)
    live.end_invocation(context, "FAILED")
    assert runs_of(context)[parent.info.run_name].info.status == "FAILED"
    assert not list((tmp_path / ".snakemake/wavefold-tracking").iterdir())  # its files go with it


def test_a_stopped_job_is_killed_and_its_resumed_run_goes_on_without_repeating_epochs(task, tmp_path):
    """SIGTERM (a cancelled job, a SLURM time limit) ends the run KILLED with the epochs it did; the
    job run again with the same identity resumes its checkpoint and its run (epochs 1-4 once each,
    FINISHED); a job of another identity gets a run of its own."""
    context = context_in(tmp_path)
    paths = job_paths(tmp_path / "job")
    resume = paths.checkpoint.with_name("mlflow-run.txt")

    def stop_after_epoch_2(run):
        def on_epoch(row):
            run.epoch(row)
            if row["epoch"] == 2:
                os.kill(os.getpid(), signal.SIGTERM)

        return on_epoch

    with pytest.raises(live.Stopped):
        with live.tracked(context, "job", {}, resume=resume, identity="same") as run:
            loop.train_fold(task.fold(0), SHORT, 1, paths, torch.device("cpu"), 0, "same", on_epoch=stop_after_epoch_2(run))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the job's handler is gone with its block
    stopped = runs_of(context)["job"]
    assert stopped.info.status == "KILLED" and [m.step for m in history(context, stopped)] == [1, 2]
    assert resume.exists() and paths.checkpoint.exists()

    with live.tracked(context, "job", {}, resume=resume, identity="same") as run:
        loop.train_fold(task.fold(0), SHORT, 1, paths, torch.device("cpu"), 0, "same", on_epoch=run.epoch)
    resumed = runs_of(context)["job"]
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    assert [m.step for m in history(context, resumed)] == [1, 2, 3, 4]
    assert not resume.exists() and not paths.checkpoint.parent.exists()
    curve = pd.read_csv(paths.curve)
    assert [m.value for m in history(context, resumed, "val_loss")] == pytest.approx(curve["val_loss"].tolist())

    resume.parent.mkdir()
    resume.write_text(f"{stopped.info.run_id} another-identity")
    with live.tracked(context, "job", {}, resume=resume, identity="changed") as run:
        run.epoch({"epoch": 1, "train_loss": 1.0})
    client = MlflowClient(tracking_uri=context.settings.uri)
    assert len(client.search_runs([resumed.info.experiment_id], "attributes.run_name = 'job'")) == 2


def test_an_unreachable_store_costs_one_warning_and_the_job_goes_on(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    context = context_in(tmp_path)
    context.settings = TrackingSettings(uri="http://127.0.0.1:9")  # the discard port: nothing listens
    with live.tracked(context, "job", {}) as run:
        for epoch in range(1, 4):
            run.epoch({"epoch": epoch, "train_loss": 1.0 / epoch})
        run.log({"fold_accuracy": 0.5})
    warnings = [r for r in caplog.records if "experiment tracking stopped" in r.getMessage()]
    assert len(warnings) == 1 and "127.0.0.1:9" in warnings[0].getMessage()


def _parent_of_a_job(folder):
    context = context_in(folder)
    return context.parent(Store(context.settings.uri, context.settings.experiment))


def test_parallel_jobs_of_one_invocation_share_one_parent_run(tmp_path):
    Store(context_in(tmp_path).settings.uri, "wavefold")  # the store exists, as after the first job
    with multiprocessing.get_context("fork").Pool(4) as pool:
        parents = pool.map(_parent_of_a_job, [tmp_path] * 4)
    assert len(set(parents)) == 1 and len(all_runs(context_in(tmp_path))) == 1
    other = context_in(tmp_path, invocation="inv-2")
    assert other.parent(Store(other.settings.uri, "wavefold")) != parents[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serving(command: list[str], url: str, cwd: Path, env: dict, timeout: float = 120) -> subprocess.Popen:
    """``command`` started in its own process group, once ``url``/health answers."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    stop(process)
    raise AssertionError(f"{command} did not answer at {url}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def runs_on(url: str, experiment: str = "wavefold") -> list[dict]:
    """The runs of an experiment, read through the server's REST API."""
    def post(path, body):
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    found = post("experiments/search", {"max_results": 100, "filter": f"name = '{experiment}'"}).get("experiments", [])
    return post("runs/search", {"experiment_ids": [found[0]["experiment_id"]]}).get("runs", []) if found else []


@pytest.mark.dag
def test_the_ui_is_one_command_away_and_a_job_on_another_machine_logs_live_to_it(speech_run, tmp_path):
    """./wavefold ui <workdir>: MLflow's UI (and its REST API, a tracking server) on the runs tracked
    there. tracking.uri pointing at it, a job on another machine than the workflow's logs live — its
    epochs are on the server while it runs — and its files go through the server."""
    shutil.copytree(speech_run / "mlruns", tmp_path / "mlruns")  # the shared run's store, left as it is
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "WAVEFOLD_VENV": str(Path(sys.executable).parents[1])}
    ui = serving([str(REPO / "wavefold"), "ui", str(tmp_path), "--port", str(port)], url, tmp_path, environment)
    try:
        names = {r["info"]["run_name"] for r in runs_on(url)}
        assert {"round1/lenet/fold0", "round2/matchboxnet/fold1", "round1/blend"} <= names

        context = context_in(tmp_path)
        context.settings = TrackingSettings(uri=url, experiment="elsewhere")
        context.environ[live.ENV_HOST] = "login-node-1"  # the workflow was started on another machine
        (tmp_path / "curve.csv").write_text("epoch,train_loss\n1,1.0\n")
        with live.tracked(context, "round1/lenet/fold0", {"wavefold.kind": "training"}) as run:
            run.epoch({"epoch": 1, "train_loss": 1.0})
            run.epoch({"epoch": 2, "train_loss": 0.5})
            deadline, seen = time.time() + 60, []
            while time.time() < deadline and not seen:
                seen = [r for r in runs_on(url, "elsewhere") if r["info"]["run_name"] == "round1/lenet/fold0"
                        and any(m["key"] == "train_loss" for m in r["data"].get("metrics", []))]  # fmt: skip
                time.sleep(0.2)
            assert seen and seen[0]["info"]["status"] == "RUNNING"
            run.log({"fold_accuracy": 0.8}, artifacts=[tmp_path / "curve.csv"])
        finished = next(r for r in runs_on(url, "elsewhere") if r["info"]["run_name"] == "round1/lenet/fold0")
        assert finished["info"]["status"] == "FINISHED"
        client = MlflowClient(tracking_uri=url)
        assert [m.step for m in client.get_metric_history(finished["info"]["run_id"], "train_loss")] == [1, 2]
        assert [a.path for a in client.list_artifacts(finished["info"]["run_id"])] == ["curve.csv"]
    finally:
        stop(ui)


def test_jobs_on_other_machines_than_the_workflows_log_live_only_to_a_server():
    sqlite = TrackingSettings(uri="sqlite:///mlruns/mlflow.db")
    here = {live.ENV_HOST: os.uname().nodename}
    elsewhere = {live.ENV_HOST: "login-node-1"}
    assert live.not_live_because(sqlite, here) is None
    assert "tracking server" in live.not_live_because(sqlite, elsewhere)
    assert live.not_live_because(TrackingSettings(uri="http://tracking:5000"), elsewhere) is None
    assert "tracking.mlflow is false" in live.not_live_because(TrackingSettings(mlflow=False), here)


# --------------------------------------------------------------------------- through the real snakemake

LIVE_RUN = {**SPEECH_BACKBONE, **TRACKED, "training": {"run": ["lenet"], "defaults": {"epochs": 6, "batch_size": 32}},
            "pseudo_label": {"rounds": 1}}  # fmt: skip
TRAINED = ("results/train/round1/lenet/fold0/curve.csv", "results/train/round1/lenet/fold1/curve.csv")


def training_process(workdir: Path) -> int | None:
    """The running training job's process in ``workdir`` (its script: .snakemake/scripts/tmp*.train.py)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b".train.py" in cmdline.read_bytes() and os.readlink(cmdline.parent / "cwd") == str(workdir):
                return int(cmdline.parent.name)
        except OSError:  # gone meanwhile
            pass
    return None


def watch(process, workdir, context, until, timeout=600):
    """Poll the store (and the job's files) while snakemake runs; ``until(runs)`` stops it early."""
    deadline = time.time() + timeout
    while process.poll() is None and time.time() < deadline:
        runs = {name: (run, [m.step for m in history(context, run)]) for name, run in runs_of(context).items()
                if name.startswith("round1/lenet")}  # fmt: skip
        if until(runs):
            return runs
        time.sleep(0.2)
    return None


@pytest.mark.dag
def test_jobs_log_while_the_dag_runs_a_stopped_job_is_killed_and_its_retry_goes_on_in_its_run(speech_backbone, tmp_path):
    """Through the real snakemake, reading the store between epochs: a training job's run shows its
    epochs while it trains, before the DAG is done; SIGTERM to the job (what a cancel or a time limit
    sends) leaves its run KILLED with those epochs and the invocation's FAILED (onerror); the next
    invocation resumes the job from its checkpoint in the same run, every epoch once, FINISHED."""
    workdir = from_backbone(speech_backbone, tmp_path / "run")
    context = live.Context(TrackingSettings(uri=f"sqlite:///{workdir}/mlruns/mlflow.db"), {}, workdir, {})
    process = snakemake_started(workdir, *TRAINED, config=LIVE_RUN, output=tmp_path / "first.txt")
    try:
        growing = watch(process, workdir, context,
                        lambda runs: any(run.info.status == "RUNNING" and 2 <= len(steps) < 6
                                         for run, steps in runs.values()))  # fmt: skip
        assert growing is not None, (tmp_path / "first.txt").read_text()[-3000:]
        assert not all((workdir / path).exists() for path in TRAINED)  # seen while the DAG runs, not after it
        name = next(name for name, (run, steps) in growing.items() if run.info.status == "RUNNING")
        os.kill(training_process(workdir), signal.SIGTERM)
    finally:
        process.wait(timeout=600)
    assert process.returncode != 0
    stopped = runs_of(context)[name]
    done = [m.step for m in history(context, stopped)]
    assert stopped.info.status == "KILLED" and done == list(range(1, len(done) + 1)) and len(done) >= 2
    parent = MlflowClient(tracking_uri=context.settings.uri).get_run(stopped.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED"

    process = snakemake_started(workdir, *TRAINED, config=LIVE_RUN, output=tmp_path / "second.txt")
    assert process.wait(timeout=900) == 0, (tmp_path / "second.txt").read_text()[-3000:]
    fold = name.rsplit("fold", 1)[1]
    assert "resuming from" in (workdir / f"logs/train/round1/lenet/fold{fold}.log").read_text()
    resumed = runs_of(context)[name]
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    assert [m.step for m in history(context, resumed)] == [1, 2, 3, 4, 5, 6]
    curve = pd.read_csv(workdir / f"results/train/round1/lenet/fold{fold}/curve.csv")
    assert [m.value for m in history(context, resumed, "val_loss")] == pytest.approx(curve["val_loss"].tolist())
    parents = [r for r in all_runs(context) if r.data.tags.get("wavefold.kind") == "workflow"]
    assert sorted(r.info.status for r in parents) == ["FAILED", "FINISHED"]  # one per invocation
