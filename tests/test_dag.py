"""The real snakemake runs the DAG to the folds: on the tiny demo (the session's shared backbone), on a
local archive with bad audio, on a wrong layout; what re-runs when settings or modules change; the
shipped configs and profiles planned."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from bad_audio import EXPECTED, clip_name, write_bad_clips
from conftest import COMPETITION, REPO, SPEECH_BACKBONE, copy_tree, edited, from_backbone, output_of, snakemake
from wavefold import archives
from wavefold.competitions.tensorflow_speech import LABELS

pytestmark = pytest.mark.dag
TINY = SPEECH_BACKBONE
N_FOLDS = TINY["folds"]["n_folds"]
# These tests cover the backbone (download to folds); training has tests of its own.
FOLDS = "results/folds/summary.csv"


def jobs_planned(result) -> set[str]:
    """Rule names in the 'Job stats' table of a dry run."""
    text = output_of(result)
    if "Nothing to be done" in text:
        return set()
    table = text.split("Job stats:")[1].split("total")[0]
    return set(re.findall(r"^(\w+)\s+\d+\s*$", table, flags=re.M))


@pytest.fixture(scope="module")
def demo_run(speech_backbone):
    return speech_backbone


def test_demo_dag_reaches_the_folds(demo_run):
    index = pd.read_csv(demo_run / "results/index/train.csv")
    test_index = pd.read_csv(demo_run / "results/index/test.csv")
    train = np.load(demo_run / "results/cache/train.npy", mmap_mode="r")
    test = np.load(demo_run / "results/cache/test.npy", mmap_mode="r")
    assert train.dtype == np.int16 and train.shape == (len(index), 16000)
    assert test.shape == (len(test_index), 16000) and test_index["usable"].all()
    # The cache holds exactly the decoded WAV, row for row.
    root = next((demo_run / "resources").glob("demo-tiny-seed42"))
    for row in (0, len(index) // 2, len(index) - 1):
        samples, _ = sf.read(root / "extracted" / index.loc[row, "path"], dtype="int16")
        np.testing.assert_array_equal(train[row, : len(samples)], samples)
    folds = pd.read_csv(demo_run / "results/folds/folds.csv")
    assert folds["id"].tolist() == index["id"].tolist() and set(folds["fold"]) == set(range(N_FOLDS))
    assert (folds.groupby("group")["fold"].nunique() == 1).all()
    summary = pd.read_csv(demo_run / "results/folds/summary.csv", index_col=0)
    assert list(summary.columns[: len(LABELS)]) == list(LABELS)
    assert (summary.loc[[str(k) for k in range(N_FOLDS)], "silence"] > 0).all()
    assert (root / "solution.csv").is_file()
    for rule in ("demo_competition", "download", "extract", "index", "cache_audio", "folds"):
        assert (demo_run / "logs" / f"{rule}.log").is_file()
    assert "fold summary" in (demo_run / "logs/folds.log").read_text()


def test_the_backbone_from_scratch_is_the_same_bytes(demo_run, tmp_path):
    """Reproducible from a clean state with the same seed: the demo spoken again (its hidden solution,
    every clip through the cache), the index, the folds and the offline variants, byte for byte. That
    the training and blends that follow are is test_slurm.py's (made again there, through SLURM)."""
    again = tmp_path / "again"
    result = snakemake(again, FOLDS, "results/cache/augmented.npy", config=TINY)
    assert result.returncode == 0, output_of(result)[-3000:]
    compared = ["results/index/train.csv", "results/index/test.csv", "results/cache/train.npy", "results/cache/test.npy",
                "results/cache/noise.npy", "results/folds/folds.csv", "results/folds/silence.csv",
                "results/folds/noise_segments.csv", "results/cache/augmented.npy", "results/cache/augmented.csv",
                "resources/demo-tiny-seed42/solution.csv"]  # fmt: skip
    for name in compared:
        assert (again / name).read_bytes() == (demo_run / name).read_bytes(), name


def test_noise_of_each_fold_is_its_own(demo_run):
    segments = pd.read_csv(demo_run / "results/folds/noise_segments.csv")
    silence = pd.read_csv(demo_run / "results/folds/silence.csv")
    noise = np.load(demo_run / "results/cache/noise.npy", mmap_mode="r")
    owner = np.full(len(noise), -1)
    for seg in segments.itertuples():
        assert (owner[seg.start : seg.start + seg.length] == -1).all()  # stretches do not overlap
        owner[seg.start : seg.start + seg.length] = seg.fold
    for clip in silence.itertuples():
        assert (owner[clip.start : clip.start + 16000] == clip.fold).all()


def test_second_run_does_nothing(demo_run, tmp_path):
    workdir = copy_tree(demo_run, tmp_path / "again")
    result = snakemake(workdir, FOLDS, config=TINY)
    assert result.returncode == 0 and "Nothing to be done" in output_of(result), output_of(result)


def test_changing_the_fold_count_reruns_only_the_folds(demo_run, tmp_path):
    workdir = copy_tree(demo_run, tmp_path / "three")
    config = {**TINY, "folds": {"n_folds": 3}}
    assert jobs_planned(snakemake(workdir, FOLDS, "--dry-run", config=config)) == {"folds"}
    cache_mtime = (workdir / "results/cache/train.npy").stat().st_mtime
    result = snakemake(workdir, FOLDS, config=config)
    assert result.returncode == 0, output_of(result)
    assert set(pd.read_csv(workdir / "results/folds/folds.csv")["fold"]) == {0, 1, 2}
    assert (workdir / "results/cache/train.npy").stat().st_mtime == cache_mtime


def edited_dry_run(module_name, workdir, target, config):
    """The jobs a dry run plans while ``scripts/wavefold/<module_name>`` of the workflow copy has an edit."""
    # Snakemake compares checksums of small inputs when their mtime changes: only a real edit counts.
    with edited(f"scripts/wavefold/{module_name}"):
        return jobs_planned(snakemake(workdir, target, "--dry-run", config=config))


def test_editing_a_module_reruns_its_rules(demo_run):
    assert edited_dry_run("index.py", demo_run, FOLDS, TINY) == {"index", "cache_audio", "folds"}


def test_editing_the_competitions_module_reruns_every_step_that_loads_it(demo_run):
    """The competition's module is loaded by name (not imported), yet every step that loads it
    depends on it: the demo generator, the download, the layout check, the index and the folds re-run."""
    planned = edited_dry_run("competitions/tensorflow_speech.py", demo_run, FOLDS, TINY)
    assert planned == {"demo_competition", "download", "extract", "index", "cache_audio", "folds"}
    demo_zip = f"resources/demo-tiny-seed42/download/{COMPETITION}.zip"
    assert edited_dry_run("competitions/tensorflow_speech_demo.py", demo_run, demo_zip, TINY) == {"demo_competition"}


def repack(extracted, out_dir):
    """Archive an extracted competition folder as Kaggle's download zip."""
    staging = out_dir / "archives"
    archives.pack_7z(extracted, staging / "train.7z", ["train"])
    archives.pack_7z(extracted, staging / "test.7z", ["test"])
    archives.pack_7z(extracted, staging / "sample_submission.7z", ["sample_submission.csv"])
    zip_path = out_dir / f"{COMPETITION}.zip"
    archives.pack_competition_zip([staging / n for n in ("train.7z", "test.7z", "sample_submission.7z")], zip_path)
    return zip_path


def test_bad_audio_in_a_local_archive_gets_the_documented_outcomes(tiny_extracted, tmp_path):
    competition = shutil.copytree(tiny_extracted, tmp_path / "competition")
    write_bad_clips(competition / "train" / "audio" / "yes", dataset_names=True)
    (competition / "test" / "audio" / "clip_00000000b.wav").write_text("not audio")
    with open(competition / "sample_submission.csv", "a") as sample:  # a listed clip whose audio is broken
        sample.write("clip_00000000b.wav,silence\n")
    (competition / "train" / "audio" / "yes" / "notes.txt").write_text("stray file")
    zip_path = repack(competition, tmp_path)

    workdir = tmp_path / "work"
    result = snakemake(workdir, FOLDS, config={"source": str(zip_path)})
    assert result.returncode == 0, output_of(result)
    problems = pd.read_csv(workdir / "results/index/problems.csv")
    train = pd.read_csv(workdir / "results/index/train.csv")
    for case, (kinds, rejected) in EXPECTED.items():
        path = f"train/audio/yes/{clip_name(case)}"
        assert set(problems.loc[problems["path"] == path, "problem"]) == kinds, case
        assert (f"yes/{clip_name(case)}" in set(train["id"])) != rejected, case
    assert "skipped" in set(problems.loc[problems["path"].str.endswith("notes.txt"), "action"])
    test = pd.read_csv(workdir / "results/index/test.csv")
    broken = test["fname"] == "clip_00000000b.wav"
    assert not test.loc[broken, "usable"].item()
    assert not np.load(workdir / "results/cache/test.npy", mmap_mode="r")[broken.to_numpy()].any()
    log = (workdir / "logs/index.log").read_text()
    assert "train empty -> rejected: 1" in log and "train not_wav -> rejected: 1" in log


def test_wrong_layout_fails_early_and_says_what_was_expected(tiny_extracted, tmp_path):
    competition = shutil.copytree(tiny_extracted, tmp_path / "competition")
    shutil.rmtree(competition / "train" / "audio" / "sheila")
    zip_path = repack(competition, tmp_path)
    result = snakemake(tmp_path / "work", FOLDS, config={"source": str(zip_path)})
    assert result.returncode != 0
    assert "not laid out like the TensorFlow Speech Recognition Challenge" in output_of(result)
    assert "sheila" in output_of(result)


def test_a_source_that_does_not_exist_is_named(tmp_path):
    result = snakemake(tmp_path / "work", FOLDS, config={"source": str(tmp_path / "missing.zip")})
    assert result.returncode != 0 and "missing.zip does not exist" in output_of(result)


@pytest.mark.parametrize("overlay", ["kaggle-gpu.yaml", "freesound-gpu.yaml", "freesound-2019-gpu.yaml"])
def test_the_real_competition_config_plans_seventy_gpu_jobs_one_a_pretrained_backbone(tmp_path, overlay):
    """config/kaggle-gpu.yaml (the README's settings for the real competition), freesound-gpu.yaml and
    freesound-2019-gpu.yaml (the same for the two Freesound competitions) make valid DAGs, from the
    Kaggle download of their competition; each has a pretrained timm backbone beside the six from
    scratch, whose weights one fetch_weights job saves and every one of its training jobs reads."""
    real = yaml.safe_load((REPO / "config" / overlay).read_text())
    result = snakemake(tmp_path, "--dry-run", "--resources", "gpu=4", config=real)
    assert result.returncode == 0, output_of(result)[-3000:]
    slug = real.get("competition", "tensorflow-speech-recognition-challenge")
    assert f"resources/{slug}/extracted" in output_of(result)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", output_of(result).split("Job stats:")[1], flags=re.M))
    assert counts["train"] == counts["predict_test"] == "70"  # 5 folds x 7 models x 2 rounds
    pretrained = [m for m, s in real["training"]["models"].items() if s["architecture"] == "timm"]
    backbone = real["training"]["models"][pretrained[0]]["params"]["name"]
    fetched = f"resources/weights/timm/{backbone}.safetensors"
    assert len(pretrained) == 1 and counts["fetch_weights"] == "1"
    readers = re.findall(rf"rule train:\n\s+input: [^\n]*{re.escape(fetched)}[^\n]*\n[\s\S]*?wildcards: round=\d, "
                         rf"model=(\w+)", output_of(result))  # fmt: skip
    assert len(readers) == 10 and set(readers) == set(pretrained)
    assert counts["blend"] == "2" and counts["pseudo_label"] == "1" and counts["download"] == "1"
    assert "score_local" not in counts and "demo_competition" not in counts


def test_the_shifted_test_recipe_is_a_valid_overlay_of_both_configs(tmp_path):
    """config/shifted-test.yaml (README, "A test set recorded elsewhere") over the demo's config and over
    the real competition's: every key it sets is checked when the workflow is parsed, so a typo fails."""
    recipe = yaml.safe_load((REPO / "config" / "shifted-test.yaml").read_text())
    assert recipe == {"training": {"defaults": {"adapt_batch_norm": True}}, "blend": {"choose_by": "balanced_accuracy"}}
    for name in ("config.yaml", "kaggle-gpu.yaml"):
        result = snakemake(tmp_path / name, "--dry-run", "--configfile", str(REPO / "config/config.yaml"),
                           str(REPO / "config" / name), str(REPO / "config/shifted-test.yaml"))  # fmt: skip
        assert result.returncode == 0, output_of(result)[-3000:]
    typo = tmp_path / "typo.yaml"
    typo.write_text("training: {defaults: {adapt_batchnorm: true}}\n")
    result = snakemake(tmp_path / "typo", "--dry-run", "--configfile", str(REPO / "config/config.yaml"), str(typo))
    assert result.returncode != 0 and "adapt_batchnorm" in output_of(result)


def test_the_slurm_profile_groups_each_fold_models_prediction_with_its_training(tmp_path):
    """profiles/slurm: a dry run (no cluster needed) shows train + predict_test as one group job per fold model."""
    config = {**TINY, "folds": {"n_folds": 3}, "training": {"run": ["lenet", "matchboxnet"]}, "pseudo_label": {"rounds": 2}}
    result = snakemake(tmp_path, "--dry-run", "--profile", str(REPO / "profiles" / "slurm"), config=config)
    assert result.returncode == 0, output_of(result)[-3000:]
    text = output_of(result)
    groups = text.split("Group job fit_and_predict")[1:]
    assert len(groups) == 2 * 3 * 2  # models x folds x rounds
    for group in groups:
        members = re.findall(r"rule (\w+):", group)[:2]  # the group's jobs are listed right after its header
        assert sorted(members) == ["predict_test", "train"], members


@pytest.mark.parametrize("n_folds", [13, 20])
def test_a_fold_count_the_tiny_demo_cannot_carry_is_refused_naming_the_setting(demo_run, tmp_path, n_folds):
    workdir = from_backbone(demo_run, tmp_path / "work")
    result = snakemake(workdir, FOLDS, config={**TINY, "folds": {"n_folds": n_folds}})
    assert result.returncode != 0
    text = output_of(result)
    assert f"folds.n_folds is {n_folds}, but " in text and "Set folds.n_folds to at most" in text, text[-2000:]
    assert "Traceback" not in text.split("wavefold folds")[1][:500]
