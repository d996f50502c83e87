"""The tiny demo through a real (local, single-node) SLURM with profiles/slurm, and a training job
that hits its time limit and resumes from its checkpoint when the profile's retry submits it again.

The cluster needs root and Debian's slurm-wlm, munge and MariaDB (installed when missing; see
tests/slurm_cluster.py). Where that is impossible the tests are skipped — except in CI, where they
must run. Every snakemake call runs under a hard timeout: the plugin can wait forever when sacct fails.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, output_of, share_backbone, snakemake
from slurm_cluster import ClusterUnavailable, LocalSlurm

CONFIG = {
    "demo": {"size": "tiny"},
    "folds": {"n_folds": 2},
    "training": {"run": ["matchboxnet"], "defaults": {"epochs": 1, "batch_size": 32}},
    "pseudo_label": {"rounds": 2, "threshold": 0.2, "agreement": False},
}
# Fast polling for a test (the plugin's default first wait is 40 s), and no job asking for more
# cores than the one node has (sbatch would queue it forever: "PartitionConfig").
FAST = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "--max-threads", str(os.cpu_count())]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        slurm = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    except ClusterUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no local SLURM: {error}")

    def stop_and_exit(signum, frame):  # a killed test run must not leave daemons or /etc/slurm behind
        slurm.stop()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop_and_exit)
    try:
        yield slurm
    finally:
        signal.signal(signal.SIGTERM, previous)
        slurm.stop()


def on_slurm(workdir: Path, *args: str, config: dict, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    """snakemake --profile profiles/slurm, under a hard timeout that also kills what it started."""
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "test-config.yaml"
    overlay.write_text(yaml.safe_dump(config))
    command = ["timeout", "-k", "15", str(timeout), str(Path(sys.executable).with_name("snakemake")),
               "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--profile", str(REPO / "profiles/slurm"),
               "--configfile", str(REPO / "config/config.yaml"), str(overlay), *FAST, *args]  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    return result, time.perf_counter() - started


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("on-slurm")
    result, seconds = on_slurm(workdir, config=CONFIG, timeout=1200)
    assert result.returncode == 0, output_of(result)[-6000:] + cluster.logs()
    return workdir, seconds


def test_the_tiny_demo_reaches_a_scored_submission_through_sbatch(cluster, slurm_run, tmp_path):
    workdir, slurm_seconds = slurm_run
    assert (workdir / "results/submission/local_score.json").is_file()
    jobs = cluster.jobs()
    rules = [re.sub(r"_wildcards.*", "", job["comment"]).removeprefix("rule_") for job in jobs]
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    for rule in ("index", "cache_audio", "folds", "blend", "pseudo_label", "submission"):
        assert rule in rules, rules
    # train and predict_test share one sbatch job per fold model (the profile's group).
    grouped = [job for job in jobs if "group" in job["comment"] or "fit_and_predict" in job["comment"]]
    assert len(grouped) == 4, jobs  # 1 model x 2 folds x 2 rounds
    assert not {"download", "provenance"} & set(rules)  # localrules stay on the submitting host

    # The same tiny demo without SLURM, for the closing note's comparison.
    local = tmp_path / "local"
    started = time.perf_counter()
    result = snakemake(local, config=CONFIG, timeout=1200)
    assert result.returncode == 0, output_of(result)[-3000:]
    local_seconds = time.perf_counter() - started
    print(f"\ntiny demo, 1 model x 2 folds x 2 rounds: SLURM {slurm_seconds:.0f} s, local {local_seconds:.0f} s")
    assert (local / "results/submission/submission.csv").read_bytes() == (
        workdir / "results/submission/submission.csv"
    ).read_bytes()


def test_a_training_job_that_hits_its_time_limit_is_retried_and_resumes(cluster, slurm_run, tmp_path):
    """runtime_minutes: 1 for 1.5-2.5 min of training: SLURM kills the first attempt (TIMEOUT), the profile's
    retry submits it again with 2 min, and the job resumes from its last checkpoint to the end."""
    source, _ = slurm_run
    # 70 epochs of 0.8-1.8 s (2 cores, depending on the machine's day) plus ~20 s of start-up: more
    # than the first minute, less than 1 + 2 minutes. With 110, a slow day's retry ran out at epoch 106.
    epochs = 70
    training = {**CONFIG["training"], "runtime_minutes": 1, "defaults": {"epochs": epochs, "batch_size": 16}}
    config = {**CONFIG, "training": training}
    target = "results/train/round1/matchboxnet/fold0/oof.csv"
    workdir = share_backbone(source, tmp_path / "timed-out")
    before = {job["id"] for job in cluster.jobs()}
    result, _ = on_slurm(workdir, target, config=config, timeout=900)
    assert result.returncode == 0, output_of(result)[-5000:]
    attempts = [job for job in cluster.jobs() if job["id"] not in before and "train" in job["comment"]]
    states = [job["state"] for job in attempts]
    assert states[0] == "TIMEOUT" and states[-1] == "COMPLETED", attempts
    log = (workdir / "logs/train/round1/matchboxnet/fold0.log").read_text()
    assert "resuming from" in log
    curve = pd.read_csv(workdir / "results/train/round1/matchboxnet/fold0/curve.csv")
    assert curve["epoch"].tolist() == list(range(1, epochs + 1))  # every epoch once, none lost or repeated
