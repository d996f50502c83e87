"""The tiny demo through a real (local, single-node) SLURM with profiles/slurm, and a training job
cancelled with scancel that resumes from its checkpoint when the profile's retry submits it again.

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

from conftest import REPO, output_of, snakemake
from slurm_cluster import ClusterUnavailable, LocalSlurm

CONFIG = {
    "demo": {"size": "tiny"},
    "folds": {"n_folds": 2},
    "training": {"run": ["matchboxnet"], "defaults": {"epochs": 1, "batch_size": 32}},
    "pseudo_label": {"rounds": 2, "threshold": 0.2, "agreement": False},
}
# Fast polling for a test: the plugin's default first wait is 40 s.
FAST = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        slurm = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    except ClusterUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no local SLURM: {error}")
    yield slurm
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


def test_a_cancelled_training_job_is_retried_and_resumes(cluster, slurm_run, tmp_path):
    source, _ = slurm_run
    config = {**CONFIG, "training": {**CONFIG["training"], "defaults": {"epochs": 4, "batch_size": 16}}}
    target = "results/train/round1/matchboxnet/fold0/oof.csv"
    reference, workdir = tmp_path / "reference", tmp_path / "cancelled"
    for folder in (reference, workdir):
        (folder / "results").mkdir(parents=True)
        for part in ("cache", "folds", "index"):  # the finished backbone: only training runs here
            os.symlink(source / "results" / part, folder / "results" / part)
    result = snakemake(reference, target, config=config)
    assert result.returncode == 0, output_of(result)[-3000:]

    overlay = workdir / "test-config.yaml"
    overlay.write_text(yaml.safe_dump(config))
    command = ["timeout", "-k", "15", "900", str(Path(sys.executable).with_name("snakemake")), "-s",
               str(REPO / "Snakefile"), "--directory", str(workdir), "--profile", str(REPO / "profiles/slurm"),
               "--configfile", str(REPO / "config/config.yaml"), str(overlay), *FAST, target]  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)  # fmt: skip
    checkpoint = workdir / "results/train/round1/matchboxnet/fold0/checkpoint/last.pt"
    deadline = time.time() + 600
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    running = [line.split("|")[0] for line in cluster.queued()]
    assert checkpoint.exists() and running, "the training job finished or never started"
    subprocess.run(["scancel", *running], check=True)
    try:
        output, _ = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, output[-5000:]
    states = [job["state"] for job in cluster.jobs() if "fold=0" in job["comment"] and job["id"] in running]
    assert states and all(state.startswith("CANCELLED") for state in states), cluster.jobs()
    log = (workdir / "logs/train/round1/matchboxnet/fold0.log").read_text()
    assert "resuming from" in log
    assert (workdir / target).read_bytes() == (reference / target).read_bytes()
    curve = pd.read_csv(workdir / "results/train/round1/matchboxnet/fold0/curve.csv")
    assert curve["epoch"].tolist() == [1, 2, 3, 4]
