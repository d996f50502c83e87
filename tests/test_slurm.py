"""Round 1 of the shared speech run made again through a real (local, single-node) SLURM with
profiles/slurm — byte for byte the local run's — with one training job stopped past its time limit on
the way: the profile's retry submits it again and it resumes from its checkpoint. One model's folds are
made again (lenet's: two training jobs, enough for two at once on the cluster) and everything of round 1
that reads them; matchboxnet's are the shared run's. (That the backbone itself comes out the same from
scratch is test_dag.py's.)

The cluster needs root and Debian's slurm-wlm, munge and MariaDB (installed when missing; see
tests/slurm_cluster.py). Where that is impossible the SLURM claims are skipped and the run from
round 1 is made locally — except in CI, where the cluster must run. Every snakemake call runs under
a hard timeout: the plugin can wait forever when sacct fails.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import SPEECH_RUN, copy_tree, output_of, snakemake
from slurm_cluster import ClusterUnavailable, LocalSlurm

pytestmark = [pytest.mark.dag, pytest.mark.slow]
# Fast polling for a test (the plugin's default first wait is 40 s), and no job asking for more
# cores than the one node has (sbatch would queue it forever: "PartitionConfig").
FAST = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "--max-threads", str(os.cpu_count())]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running local SLURM, or None where none can be started (never in CI: there it must)."""
    try:
        slurm = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    except ClusterUnavailable as error:
        if os.environ.get("CI"):
            raise
        print(f"no local SLURM: {error}")
        yield None
        return

    def stop_and_exit(signum, frame):  # a killed test run must not leave daemons or /etc/slurm behind
        slurm.stop()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop_and_exit)
    try:
        yield slurm
    finally:
        signal.signal(signal.SIGTERM, previous)
        slurm.stop()


@pytest.fixture
def slurm(cluster):
    if cluster is None:
        pytest.skip("no local SLURM (it needs root and apt-get); CI runs these")
    return cluster


def slurm_command(workflow: Path, workdir: Path, config: dict, *args: str) -> list[str]:
    """snakemake --profile profiles/slurm in ``workdir``, with ``config`` laid over config.yaml."""
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "test-config.yaml"
    overlay.write_text(yaml.safe_dump(config))
    return [str(Path(sys.executable).with_name("snakemake")), "-s", str(workflow / "Snakefile"),
            "--directory", str(workdir), "--profile", str(workflow / "profiles/slurm"),
            "--configfile", str(workflow / "config/config.yaml"), str(overlay), *FAST, *args]  # fmt: skip


def environment() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


#: What the run makes: round 1's models, test predictions and blend, and the provenance (a localrule:
#: it stays on the submitting host).
TARGETS = ("results/blend/round1/candidates.csv", "results/cv/round1/cv.csv", "results/provenance/commit.txt")
#: What is made again: lenet's round-1 jobs and what reads them (removed from a copy of the shared run).
MADE_AGAIN = ("results/train/round1/lenet", "results/predict/round1/lenet", "results/predict/round1/lenet.csv",
              "results/blend/round1", "results/cv/round1")  # fmt: skip
#: The training job stopped past its time limit on SLURM.
STOPPED = "results/train/round1/lenet/fold0"
STOPPED_LOG = "logs/train/round1/lenet/fold0.log"


def job_processes(job_id: str) -> list[int]:
    """The processes of a SLURM job on this node: those whose environment names it (root reads them all)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"SLURM_JOB_ID={job_id}\0".encode() in environ.read_bytes():
                pids.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or a kernel thread
            pass
    return pids


def job_running(wildcards: str) -> str | None:
    """The SLURM job id of the running job step whose snakemake was given ``wildcards`` (a target job)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (cmdline.parent / "environ").read_bytes()
        except OSError:
            continue
        if wildcards in command and b"SLURM_JOB_ID=" in environ:
            return environ.split(b"SLURM_JOB_ID=")[1].split(b"\0")[0].decode()
    return None


def stop_past_its_limit(process: subprocess.Popen, workdir: Path) -> str:
    """Once the training job ``STOPPED`` has checkpointed its fifth epoch of eight: freeze every process
    of its SLURM job (SIGSTOP), so that it cannot finish however fast the machine is, and cut its time
    limit to a minute (scontrol, as root), which it is then past or soon will be: SLURM ends it, TIMEOUT."""
    log = workdir / STOPPED_LOG
    epochs = SPEECH_RUN["training"]["defaults"]["epochs"]
    deadline = time.time() + 900
    while process.poll() is None and time.time() < deadline:
        if log.is_file() and f"epoch 5/{epochs}:" in log.read_text():
            break
        time.sleep(0.05)
    job = job_running("model=lenet,fold=0") or job_running("fold=0,model=lenet")
    assert (workdir / STOPPED / "checkpoint/last.pt").exists() and job is not None, ("finished, or never ran",
                                                                                     process.poll())  # fmt: skip
    for pid in job_processes(job):
        os.kill(pid, signal.SIGSTOP)
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=1"], check=True, capture_output=True)
    return job


@pytest.fixture(scope="module")
def round_one(cluster, workflow, speech_run, tmp_path_factory):
    """Round 1 of the shared run, lenet's jobs and what reads them made again in a copy of it, through
    SLURM where there is a cluster (one training job stopped past its limit), else locally: (folder,
    'slurm' | 'local', the stopped job's id)."""
    workdir = copy_tree(speech_run, tmp_path_factory.mktemp("on-slurm") / "run")
    # The logs too (the stop watches the new one), and the shared run's MLflow store (this run tracks its own).
    for made in (*MADE_AGAIN, "logs/train/round1/lenet", "mlruns"):
        path = workdir / made
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if cluster is None:
        result = snakemake(workdir, *TARGETS, config=SPEECH_RUN, timeout=1800)
        assert result.returncode == 0, output_of(result)[-5000:]
        return workdir, "local", None
    # runtime_minutes: 1, a SLURM resource (no part of what a job computes): a retry gets 2.
    config = {**SPEECH_RUN, "training": {**SPEECH_RUN["training"], "runtime_minutes": 1}}
    command = ["timeout", "-k", "15", "1800", *slurm_command(workflow, workdir, config, *TARGETS)]
    process = subprocess.Popen(command, cwd=workdir, env=environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        stopped = stop_past_its_limit(process, workdir)
    finally:
        output, _ = process.communicate(timeout=1800)
    assert process.returncode == 0, output[-6000:] + cluster.logs()
    return workdir, "slurm", stopped


def test_round_one_is_the_shared_runs_byte_for_byte(round_one, speech_run):
    """lenet's fold models' OOF and test tables and round 1's blend, made through SLURM (one job stopped
    and resumed on the way), are the bytes the local run wrote."""
    again = round_one[0]
    compared = ["results/blend/round1/oof.csv", "results/blend/round1/test.csv", "results/blend/round1/candidates.csv",
                "results/cv/round1/cv.csv"]  # fmt: skip
    compared += [str(p.relative_to(speech_run)) for p in sorted(speech_run.glob("results/train/round1/lenet/fold*/oof.csv"))]
    compared += [str(p.relative_to(speech_run)) for p in sorted(speech_run.glob("results/predict/round1/lenet/fold*.csv"))]
    assert len(compared) == 4 + 2 + 2 and all((again / made).exists() for made in MADE_AGAIN)
    for name in compared:
        assert (again / name).read_bytes() == (speech_run / name).read_bytes(), name
    kept = sorted(speech_run.glob("results/*/round1/matchboxnet/**/*.*"))  # not made again: the shared run's
    assert kept and all((again / p.relative_to(speech_run)).stat().st_mtime_ns == p.stat().st_mtime_ns for p in kept)


def test_the_jobs_ran_through_sbatch_grouped_and_localrules_stayed_home(slurm, round_one):
    workdir, how, stopped = round_one
    assert how == "slurm" and (workdir / TARGETS[0]).is_file()
    jobs = [job for job in slurm.jobs() if job["id"] != stopped]
    rules = [re.sub(r"_wildcards.*", "", job["comment"]).removeprefix("rule_") for job in jobs]
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    for rule in ("average_folds", "cv_table", "blend"):
        assert rule in rules, rules
    # train and predict_test share one sbatch job per fold model (the profile's group).
    grouped = [job for job in jobs if "group" in job["comment"] or "fit_and_predict" in job["comment"]]
    assert len(grouped) == 2, jobs  # lenet's 2 folds, the stopped one's retry among them
    # Two fold models trained at once on the cluster (no workflow-profile cap of one GPU job at a time):
    # the stopped job among them, which held its slot until SLURM ended it (the others may then have run
    # one after another: with the frozen job on its share of the node, one slot was left).
    everything = [job for job in slurm.jobs() if "group" in job["comment"] or "fit_and_predict" in job["comment"]]
    spans = [(pd.Timestamp(job["start"]), pd.Timestamp(job["end"])) for job in everything]
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a is not b), spans
    assert "provenance" not in rules  # a localrule: it stays on the submitting host
    assert (workdir / "results/provenance/commit.txt").is_file()


def test_a_training_job_past_its_time_limit_is_retried_and_resumes(slurm, round_one):
    """The stopped job ended TIMEOUT; the profile's retry (runtime x 2) resumed it from its checkpoint,
    every epoch once, to the bytes the shared run's uninterrupted job wrote (previous test)."""
    workdir, _, stopped = round_one
    state = {job["id"]: job["state"] for job in slurm.jobs()}
    assert state[stopped] == "TIMEOUT", state
    log = (workdir / STOPPED_LOG).read_text()
    assert "resuming from" in log
    curve = pd.read_csv(workdir / STOPPED / "curve.csv")
    assert curve["epoch"].tolist() == list(range(1, SPEECH_RUN["training"]["defaults"]["epochs"] + 1))
    # Tracked live from the node: the stopped job's run went on in its retry, every epoch once, FINISHED.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("wavefold").experiment_id
    runs = client.search_runs([experiment], "attributes.run_name = 'round1/lenet/fold0'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "train_loss"))
    assert steps == curve["epoch"].tolist()
