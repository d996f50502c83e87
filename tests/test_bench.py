"""Every bench/ script, in a smoke mode (tiny sizes, seconds) against the session's shared run or a tiny
input of its own: a bench that breaks (a moved file, a renamed column) fails the suite. What each one
prints is checked against the run's own tables where it re-derives them; timings are printed, never
asserted."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def bench(name: str, *args: str, timeout: int = 600) -> str:
    """``bench/<name>.py`` run as a user runs it; its printed output."""
    result = subprocess.run([sys.executable, str(REPO / "bench" / name), *args], capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def rows_of(output: str, first_words: list[str]) -> dict[str, list[str]]:
    """The printed table rows that start with one of ``first_words``, split on whitespace."""
    return {line.split()[0]: line.split() for line in output.splitlines() if line.split()[:1] and line.split()[0] in first_words}


@pytest.mark.dag
def test_load_audio_compares_the_cache_with_per_file_decoding(speech_run):
    output = bench("load_audio.py", "--workdir", str(speech_run), "--clips", "40", "--repeats", "1")
    assert "random-access loading of 40 clips" in output
    for method in ("librosa.load", "soundfile.read", "cache, clip by clip", "cache, one batch"):
        assert method in output
    assert output.count("target: cache clip by clip >=") == 3


@pytest.mark.dag
def test_train_throughput_times_the_real_training_step(speech_run):
    output = bench("train_throughput.py", "--workdir", str(speech_run), "--steps", "2", "--batch-size", "8",
                   "--architectures", "lenet", "matchboxnet")  # fmt: skip
    rows = rows_of(output, ["lenet", "matchboxnet"])
    assert set(rows) == {"lenet", "matchboxnet"}, output


def test_gpu_throughput_runs_alone_on_synthetic_audio_for_the_architectures_and_a_timm_backbone():
    """No workflow run, no snakemake, a plain Python: each architecture asked for (three here, to keep
    it short; every one by default) and the named timm backbone get a row with a throughput in
    training and in inference, lenet's ratios 1."""
    output = bench("gpu_throughput.py", "--clips", "48", "--batch-size", "8", "--steps", "1", "--timm", "test_efficientnet",
                   "--device", "cpu", "--architectures", "lenet", "m5", "timm")  # fmt: skip
    names = ["lenet", "m5", "timm:test_efficientnet"]
    rows = rows_of(output, names)
    assert set(rows) == set(names) and "48 synthetic 1-s clips" in output, output
    for name, row in rows.items():  # parameters, train clips/s, input share, peak MiB, infer clips/s, ratios
        assert float(row[2].replace(",", "")) > 0 and float(row[5].replace(",", "")) > 0, row
    assert rows["lenet"][-2:] == ["1.00", "1.00"]


@pytest.mark.dag
def test_cv_per_model_reads_a_finished_run(speech_run):
    """--reuse: one row per model (named as in config/config.yaml), lenet the baseline, its CV the run's."""
    models = ["lenet", "matchboxnet"]
    output = bench("cv_per_model.py", "--reuse", "--workdir", str(speech_run), "--models", *models)
    rows = rows_of(output, models)
    assert set(rows) == set(models), output
    header = next(line.split() for line in output.splitlines() if line.split()[:1] == ["architecture"])
    mean = header.index("mean") + 1  # a row starts with the model's name, the header does not
    cv = pd.read_csv(speech_run / "results/cv/round1/cv.csv", index_col=0)
    for model in models:
        assert float(rows[model][mean]) == pytest.approx(cv.loc[model, "mean"], abs=5e-4)
    assert rows["lenet"][-2:] == ["1.000", "1.000"]


@pytest.mark.dag
def test_end_to_end_scores_a_finished_run(speech_run):
    output = bench("end_to_end.py", "--reuse", "--workdir", str(speech_run))
    assert "Wall time per rule" in output and "train" in output
    score = json.loads((speech_run / "results/submission/local_score.json").read_text())
    assert f"'all': {score['all']}" in output  # the DAG's own local score, printed


@pytest.mark.dag
def test_blend_ablation_replays_the_runs_own_blend(speech_run):
    """The row with the run's own blend settings (the defaults: auto, no EM) chooses what the DAG's
    round-1 blend chose and scores what the DAG's local score gave it."""
    output = bench("blend_ablation.py", "--workdir", str(speech_run), "--round", "1")
    line = next(line for line in output.splitlines() if line.strip().startswith("auto (1 SE), no EM"))
    chosen, cv, hidden = line.split()[5:8]
    candidates = pd.read_csv(speech_run / "results/blend/round1/candidates.csv")
    assert chosen == candidates.loc[candidates["chosen"], "candidate"].item()
    local = pd.read_csv(speech_run / "results/submission/local_scores.csv")
    final = local[(local["round"] == 1) & local["predictions"].str.startswith("final")]
    assert float(hidden) == pytest.approx(final["hidden"].item(), abs=1e-4)
    assert float(cv) == pytest.approx(final["cv"].item(), abs=1e-4)


@pytest.mark.dag
def test_shift_prints_the_tables_of_a_finished_run(speech_run, tmp_path):
    (tmp_path / "baseline").symlink_to(speech_run)
    output = bench("shift.py", "--reuse", "--workdir", str(tmp_path), "--shift", "mild")
    assert "=== final submissions, demo.shift = mild ===" in output
    score = json.loads((speech_run / "results/submission/local_score.json").read_text())
    summary = output.split("=== final submissions")[1].splitlines()[3].split()
    assert summary[0] == "baseline" and f"{score['all']:.4f}" in summary, summary


def test_malloc_threshold_runs_its_three_probes(tmp_path):
    output = bench("malloc_threshold.py", "--rows", "96", "--batch-size", "32", "--workdir", str(tmp_path))
    assert "predict_test's loop over 96 test clips (3 batches of 32" in output
    for setting in ("glibc's defaults", "release_freed every", "mmap threshold fixed"):
        assert setting in output, output


@pytest.mark.dag
def test_scale_runs_the_workflow_on_a_competition_of_its_own(tmp_path, workflow):
    output = bench("scale.py", "--fractions", "0.003", "--workdir", str(tmp_path), "--cores", "2",
                   "--workflow", str(workflow))  # fmt: skip
    for step in ("download", "index", "cache_audio", "folds", "train", "predict_test", "workflow (wall)"):
        assert step in output, output
    table = pd.read_csv(tmp_path / "scale.csv")
    assert set(table["fraction"]) == {0.003} and (table["seconds"] > 0).all()
