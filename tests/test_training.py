"""Training through the real snakemake on the tiny demo: every architecture, OOF format, reruns, resume."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, copy_of_the_workflow, finished_run, output_of, share_backbone, snakemake, speech
from test_dag import jobs_planned
from wavefold.competitions.tensorflow_speech import LABELS
from wavefold.models import REGISTRY
from wavefold.training.batches import gather
from wavefold.training.data import epoch_plan, load_fold, pseudo_draw
from wavefold.training.settings import TrainSettings, job_seed

ALL = {name: {"architecture": name} for name in REGISTRY}
LABELS12, WORDS31 = speech().label_space("labels"), speech().label_space("words31")
CONFIG = {
    "demo": {"size": "tiny"},
    "folds": {"n_folds": 2},
    "training": {"run": sorted(ALL), "models": ALL, "tta_shift_ms": [0, 50],
                 "defaults": {"epochs": 1, "batch_size": 32}},
    "pseudo_label": {"rounds": 1},  # rounds are tested in test_pipeline.py
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return finished_run(tmp_path_factory.mktemp("train"), CONFIG)


def test_every_architecture_trains_and_predicts(trained):
    cv = pd.read_csv(trained / "results/cv/round1/cv.csv", index_col=0)
    assert set(cv.index) == set(REGISTRY)
    assert cv["mean"].between(0, 1).all()
    per_class = pd.read_csv(trained / "results/cv/round1/per_class.csv", index_col=0)
    assert list(per_class.columns) == list(LABELS)
    test_index = pd.read_csv(trained / "results/index/test.csv")
    for model in REGISTRY:
        predictions = pd.read_csv(trained / f"results/predict/round1/{model}.csv")
        assert predictions["fname"].tolist() == test_index["fname"].tolist()
        assert np.allclose(predictions[list(LABELS)].sum(axis=1), 1, atol=1e-4)
        curve = pd.read_csv(trained / f"results/train/round1/{model}/fold0/curve.csv")
        assert len(curve) == 1 and {"train_loss", "val_acc", "lr"} <= set(curve.columns)


def test_out_of_fold_format_and_no_leakage(trained):
    folds = pd.read_csv(trained / "results/folds/folds.csv")
    silence = pd.read_csv(trained / "results/folds/silence.csv")
    for fold in (0, 1):
        oof = pd.read_csv(trained / f"results/train/round1/lenet/fold{fold}/oof.csv")
        assert list(oof.columns) == ["id", "fold", *LABELS]
        assert (oof["fold"] == fold).all()
        expected = folds.loc[folds["fold"] == fold, "id"].tolist() + silence.loc[silence["fold"] == fold, "id"].tolist()
        assert oof["id"].tolist() == expected  # exactly the fold's own clips and silence, nothing else
        assert np.allclose(oof[list(LABELS)].sum(axis=1), 1, atol=1e-4)


def test_changing_one_models_settings_retrains_only_that_model(trained):
    changed = {**CONFIG, "training": {**CONFIG["training"], "models": {**ALL, "lenet": {"architecture": "lenet", "lr": 0.01}}}}
    result = snakemake(trained, "--dry-run", config=changed)
    assert result.returncode == 0
    downstream = {"blend", "final_round", "submission", "score_local", "report_figures", "track", "provenance", "all"}
    assert jobs_planned(result) == {"train", "predict_test", "average_folds", "cv_table"} | downstream
    models = set(re.findall(r"wildcards: .*model=(\w+)", output_of(result)))
    assert models == {"lenet"}


def test_training_parts(trained):
    clips = np.load(trained / "results/cache/train.npy", mmap_mode="r")
    noise = np.load(trained / "results/cache/noise.npy")
    folds = pd.read_csv(trained / "results/folds/folds.csv")
    variants = np.load(trained / "results/cache/augmented.npy", mmap_mode="r")
    variant_sources = pd.read_csv(trained / "results/cache/augmented.csv")["source_row"].to_numpy()
    assert len(variants) == len(folds) == len(variant_sources)  # one variant per clip (the default)
    data = load_fold(clips, noise, folds, pd.read_csv(trained / "results/folds/silence.csv"),
                              pd.read_csv(trained / "results/folds/noise_segments.csv"), 0, LABELS12,
                              variants, variant_sources)  # fmt: skip
    # Variants inherit their source clip's fold: fold 0's job never draws a variant of a fold-0 clip.
    assert (folds["fold"].to_numpy()[variant_sources[data.variant_index]] != 0).all()
    assert len(data.variant_index) == (folds["fold"] != 0).sum()
    segments = pd.read_csv(trained / "results/folds/noise_segments.csv")
    own = segments[segments["fold"] == 0]
    for start, length in data.train_noise:  # training-side noise never touches the fold's own stretches
        assert all(start + length <= s or s + n <= start for s, n in zip(own["start"], own["length"]))
    settings = TrainSettings(
        architecture="lenet", balanced=False, unknown_share=0.5, silence_share=0.1, offline_share=0.0
    )
    source, _, target = epoch_plan(data, settings, np.random.default_rng(0))
    unknown, silence = LABELS.index("unknown"), LABELS.index("silence")
    with_variants = epoch_plan(data, TrainSettings(architecture="lenet", offline_share=0.25),
                                        np.random.default_rng(0))[0]  # fmt: skip
    is_variant = with_variants >= len(clips)
    assert abs(is_variant.sum() / ((with_variants >= 0) & ~is_variant).sum() - 0.25) < 0.01
    mixed = gather(clips, noise, with_variants[:8], np.zeros(8, int), np.ones(8), clips.shape[1], variants)
    for k, s in enumerate(with_variants[:8]):
        if s >= len(clips):
            np.testing.assert_array_equal(mixed[k], variants[s - len(clips)])
    assert abs((target == unknown).sum() / (target != silence).sum() - 0.5) < 0.02
    assert abs((target == silence).mean() - 0.1) < 0.02 and (source[target == silence] == -1).all()
    balanced_settings = TrainSettings(architecture="lenet", balanced=True, offline_share=0.0)
    balanced = epoch_plan(data, balanced_settings, np.random.default_rng(0))[2]
    counts = np.bincount(balanced[balanced != silence], minlength=12)
    assert counts[:10].min() == counts[:10].max() == counts[unknown]
    rows = np.array([5, 1, 3])
    batch = gather(clips, noise, rows, np.zeros(3, int), np.ones(3), clips.shape[1])
    np.testing.assert_array_equal(batch, clips[[5, 1, 3]])
    assert job_seed(42, 1, "lenet", 0) == job_seed(42, 1, "lenet", 0) != job_seed(42, 1, "lenet", 1)


def test_pseudo_labelled_clips_join_the_training_side_only(trained):
    clips = np.load(trained / "results/cache/train.npy", mmap_mode="r")
    test_clips = np.load(trained / "results/cache/test.npy", mmap_mode="r")
    noise = np.load(trained / "results/cache/noise.npy")
    folds = pd.read_csv(trained / "results/folds/folds.csv")
    pseudo = pd.DataFrame({"row": [3, 7, 11, 20], "label": ["yes", "silence", "unknown", "go"]})
    parts = (clips, noise, folds, pd.read_csv(trained / "results/folds/silence.csv"),
             pd.read_csv(trained / "results/folds/noise_segments.csv"), 0)  # fmt: skip
    data = load_fold(*parts, LABELS12, test_clips=test_clips, pseudo=pseudo, pseudo_noise=True)
    assert data.val_rows.tolist() == np.flatnonzero(folds["fold"] == 0).tolist()  # validation unchanged
    assert data.extra_noise.shape == (1, clips.shape[1])  # the one "silence" clip
    settings = TrainSettings(architecture="lenet", pseudo_share=0.5, offline_share=0.0, silence_share=0.1)
    source, start, target = epoch_plan(data, settings, np.random.default_rng(0))
    from_test = source >= len(clips)
    assert from_test.sum() == 4  # all of them: fewer than half the labelled clips
    no_silence = epoch_plan(data, replace(settings, silence_share=0.0), np.random.default_rng(0))
    assert (no_silence[0] >= len(clips)).sum() == 3  # an epoch without silence draws no pseudo "silence"
    batch = gather(clips, noise, source, start, np.ones(len(source)), clips.shape[1], data.variants, test_clips)
    for k in np.flatnonzero(from_test):
        row = source[k] - len(clips) - len(data.variants)
        np.testing.assert_array_equal(batch[k], test_clips[row])
        assert LABELS[target[k]] == pseudo.set_index("row").loc[row, "label"]
    words = load_fold(*parts, WORDS31, test_clips=test_clips, pseudo=pseudo)
    assert len(words.pseudo_rows) == 3  # "unknown" has no word to learn
    assert data.fingerprint() != load_fold(*parts, LABELS12).fingerprint()


def test_soft_pseudo_labels_train_toward_each_clips_own_probabilities(trained):
    """pseudo_label.soft: in an epoch's batches, each pseudo-labelled clip's target is the blend's
    probabilities for that very clip (each clip has its own here), every labelled clip's is one-hot."""
    clips = np.load(trained / "results/cache/train.npy", mmap_mode="r")
    test_clips = np.load(trained / "results/cache/test.npy", mmap_mode="r")
    parts = (clips, np.load(trained / "results/cache/noise.npy"), pd.read_csv(trained / "results/folds/folds.csv"),
             pd.read_csv(trained / "results/folds/silence.csv"),
             pd.read_csv(trained / "results/folds/noise_segments.csv"), 0)  # fmt: skip
    rows = np.array([20, 3, 11, 7])  # not in order: the lookup must go by row
    probabilities = np.random.default_rng(0).dirichlet(np.ones(12), len(rows))
    pseudo = pd.DataFrame({"row": rows, "label": np.array(LABELS)[probabilities.argmax(1)]})
    pseudo[list(LABELS)] = probabilities
    data = load_fold(*parts, LABELS12, test_clips=test_clips, pseudo=pseudo, pseudo_soft=True)
    settings = TrainSettings(architecture="lenet", pseudo_share=0.5, offline_share=0.0, silence_share=0.1)
    source, _, target = epoch_plan(data, settings, np.random.default_rng(0))
    targets = data.batch_targets(source, target)
    offset = len(clips) + len(data.variants)
    from_test = source >= offset
    assert from_test.sum() == len(rows)
    for k in np.flatnonzero(from_test):
        expected = probabilities[list(rows).index(source[k] - offset)]
        np.testing.assert_allclose(targets[k], expected, rtol=1e-6)
    np.testing.assert_array_equal(targets[~from_test], np.eye(12)[target[~from_test]])
    hard = load_fold(*parts, LABELS12, test_clips=test_clips, pseudo=pseudo)
    np.testing.assert_array_equal(hard.batch_targets(source, target), np.eye(12)[target])
    assert hard.fingerprint() != data.fingerprint()  # a checkpoint of the hard job is not resumed
    words = load_fold(*parts, WORDS31, test_clips=test_clips, pseudo=pseudo, pseudo_soft=True)
    assert words.pseudo_probabilities is None  # the 12 labels' probabilities do not name a word
    with pytest.raises(ValueError, match="probability columns"):
        load_fold(*parts, LABELS12, test_clips=test_clips, pseudo=pseudo[["row", "label"]], pseudo_soft=True)


def test_pseudo_labels_leaning_to_one_class_are_drawn_in_the_labelled_mix():
    """Under a shift 95% of the pseudo-labels say 'unknown': drawn uniformly they would make over a quarter of
    a balanced epoch unknown and teach round 2 to say it more. Drawn in the labelled mix, they don't."""
    rng = np.random.default_rng(0)
    unknown, silence = LABELS.index("unknown"), LABELS.index("silence")
    pseudo = np.where(rng.random(2000) < 0.95, unknown, rng.integers(0, 10, 2000))
    labelled = np.repeat([c for c in range(12) if c != silence], 300)  # a balanced draw: 1/11 each
    pick = pseudo_draw(pseudo, labelled, wanted=1000, silence_class=silence, silence_share=0.0, rng=rng)
    drawn = np.bincount(pseudo[pick], minlength=12)
    assert drawn[unknown] == round(1000 / 11)  # its labelled share of the wanted draw, not 95% of it
    assert (drawn[:10] == np.minimum(np.bincount(pseudo, minlength=12)[:10], round(1000 / 11))).all()
    assert len(np.unique(pick)) == len(pick)  # each clip once
    uniform = np.bincount(pseudo[rng.choice(len(pseudo), 1000, replace=False)], minlength=12)
    epoch_share = lambda d: (300 + d[unknown]) / (len(labelled) + d.sum())  # noqa: E731
    assert abs(epoch_share(drawn) - 1 / 11) < 0.025 and epoch_share(uniform) > 0.25  # the epoch's unknown share


def test_resume_after_a_kill_gives_the_same_result(trained, tmp_path):
    config = {**CONFIG, "training": {**CONFIG["training"], "run": ["lenet"], "defaults": {"epochs": 4, "batch_size": 16}}}
    target = "results/train/round1/lenet/fold0/oof.csv"
    reference = tmp_path / "reference"
    for workdir in (reference, tmp_path / "killed"):
        share_backbone(trained, workdir)
    result = snakemake(reference, target, config=config)
    assert result.returncode == 0, output_of(result)[-3000:]

    killed = tmp_path / "killed"
    (killed / "test-config.yaml").write_text(__import__("yaml").safe_dump(config))
    command = [str(os.path.join(os.path.dirname(sys.executable), "snakemake")), "-s", str(REPO / "Snakefile"),
               "--directory", str(killed), "--configfile", str(REPO / "config/config.yaml"),
               str(killed / "test-config.yaml"), "--cores", "2", target]  # fmt: skip
    process = subprocess.Popen(command, cwd=killed, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    checkpoint = killed / "results/train/round1/lenet/fold0/checkpoint/last.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (killed / target).exists(), "the job finished before it could be killed"

    # A killed snakemake leaves its lock; --unlock is what a user runs (a killed job alone leaves none).
    assert snakemake(killed, "--unlock", config=config).returncode == 0
    result = snakemake(killed, target, config=config)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert "resuming from" in (killed / "logs/train/round1/lenet/fold0.log").read_text()
    assert (killed / target).read_bytes() == (reference / target).read_bytes()
    curve_a = pd.read_csv(reference / "results/train/round1/lenet/fold0/curve.csv").drop(columns="seconds")
    curve_b = pd.read_csv(killed / "results/train/round1/lenet/fold0/curve.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(curve_a, curve_b)


def test_editing_one_architecture_retrains_only_its_models(trained):
    module = REPO / "scripts" / "wavefold" / "architectures" / "m5.py"
    original, before = module.read_bytes(), module.stat()
    try:
        module.write_bytes(original + b"\n# an edit\n")
        result = snakemake(trained, "--dry-run", config=CONFIG)
    finally:
        module.write_bytes(original)
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert result.returncode == 0, output_of(result)[-3000:]
    assert set(re.findall(r"wildcards: .*model=(\w+)", output_of(result))) == {"m5"}
    assert "train" in jobs_planned(result)


def test_cv_benchmark_reads_a_finished_run(trained):
    """bench/cv_per_model.py --reuse: one row per model (named as in config/config.yaml), lenet the baseline."""
    models = ["lenet", "m5", "matchboxnet"]
    command = [sys.executable, str(REPO / "bench/cv_per_model.py"), "--reuse", "--workdir", str(trained), "--models", *models]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()[:1] and line.split()[0] in models}
    assert set(rows) == set(models), result.stdout
    header = next(line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["architecture"])
    mean = header.index("mean") + 1  # a row starts with the model's name, the header does not
    cv = pd.read_csv(trained / "results/cv/round1/cv.csv", index_col=0)
    for model in models:
        assert float(rows[model][mean]) == pytest.approx(cv.loc[model, "mean"], abs=5e-4)
    assert rows["lenet"][-2:] == ["1.000", "1.000"]


def test_concurrent_gpu_jobs_never_share_a_device(trained, tmp_path):
    """Two simulated GPUs, snakemake allowed four GPU jobs at once: the leases keep one job per device."""
    config = {**CONFIG, "training": {**CONFIG["training"], "run": ["lenet", "matchboxnet"]}}
    workdir = share_backbone(trained, tmp_path / "gpus")
    env = {**os.environ, "WAVEFOLD_GPU_IDS": "0,1", "WAVEFOLD_LOCK_DIR": str(tmp_path / "leases")}
    env.pop("SLURM_JOB_ID", None)
    result = snakemake(workdir, "--cores", "4", "--resources", "gpu=4", "--set-threads", "train=1",
                       "predict_test=1", "--", "results/cv/round1/cv.csv",
                       *[f"results/predict/round1/{m}.csv" for m in ("lenet", "matchboxnet")], config=config, env=env)  # fmt: skip
    assert result.returncode == 0, output_of(result)[-3000:]
    intervals = []
    for log in (workdir / "logs").glob("*/round1/*/fold*.log"):
        text = log.read_text()
        leased = re.search(r"^(\S+ \S+) INFO wavefold.devices: leased GPU (\d)", text, flags=re.M)
        released = re.search(r"^(\S+ \S+) INFO wavefold.devices: released GPU (\d)", text, flags=re.M)
        assert leased and released, log
        times = [pd.Timestamp(m[1].replace(",", ".")) for m in (leased, released)]
        intervals.append((leased[2], *times))
    assert len(intervals) == 8  # 4 train + 4 predict_test jobs
    for gpu, start, end in intervals:
        for other_gpu, other_start, other_end in intervals:
            if (start, end) != (other_start, other_end) and gpu == other_gpu:
                assert end <= other_start or other_end <= start, f"two jobs on GPU {gpu} at once"
    overlapping = any(a[1] < b[2] and b[1] < a[2] for a in intervals for b in intervals if a is not b)
    assert overlapping and {gpu for gpu, *_ in intervals} == {"0", "1"}  # both devices were busy at once


def copied_backbone(source, workdir):
    """Like share_backbone, but a copy: for tests that re-run the cache's own rules (augment)."""
    (workdir / "results").mkdir(parents=True)
    for part in ("cache", "folds", "index"):
        shutil.copytree(source / "results" / part, workdir / "results" / part)
    for variants in (workdir / "results/cache").glob("augmented.*"):
        variants.unlink()  # made here, so that this folder's metadata knows the settings that made them
    return workdir


def test_changed_offline_augmentation_retrains_and_changes_the_oof(trained, tmp_path):
    """The old checkpoint bug: the job re-ran, found a finished checkpoint and wrote the old OOF again."""
    config = {**CONFIG, "training": {**CONFIG["training"], "run": ["lenet"], "defaults": {"epochs": 2, "batch_size": 32}}}
    target = "results/train/round1/lenet/fold0/oof.csv"
    workdir = copied_backbone(trained, tmp_path / "work")
    assert snakemake(workdir, target, config=config).returncode == 0
    before = (workdir / target).read_bytes()
    assert not (workdir / "results/train/round1/lenet/fold0/checkpoint").exists()  # removed once complete
    changed = {**config, "offline_augment": {"speed": [0.6, 0.7], "kinds": ["speed"]}}
    result = snakemake(workdir, target, config=changed)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert {"augment", "train"} <= set(re.findall(r"rule (\w+):", output_of(result)))
    assert "resuming" not in (workdir / "logs/train/round1/lenet/fold0.log").read_text()
    assert (workdir / target).read_bytes() != before


@pytest.fixture(scope="module")
def learned(trained, tmp_path_factory):
    """30 short epochs of MatchboxNet on the tiny demo, the last epoch kept."""
    config = {**CONFIG, "training": {**CONFIG["training"], "run": ["matchboxnet"],
                                     "defaults": {"epochs": 30, "batch_size": 32, "balanced": False}}}  # fmt: skip
    workdir = share_backbone(trained, tmp_path_factory.mktemp("learn"))
    result = snakemake(workdir, "results/cv/round1/cv.csv", config=config)
    assert result.returncode == 0, output_of(result)[-3000:]
    return workdir


def test_the_loop_learns_beyond_the_majority_class(trained, learned):
    """Its CV must clearly beat always answering the most common label (a loop that learns nothing would not)."""
    cv = pd.read_csv(learned / "results/cv/round1/cv.csv", index_col=0).loc["matchboxnet", "mean"]
    folds = pd.read_csv(trained / "results/folds/folds.csv")
    silence = pd.read_csv(trained / "results/folds/silence.csv")
    labels = pd.concat([folds["label"], silence["label"]])
    majority = labels.value_counts(normalize=True).iloc[0]
    assert cv > majority + 0.08, f"CV {cv:.3f}, majority-class baseline {majority:.3f}"


def test_an_edited_architecture_retrains_and_changes_the_oof(trained, tmp_path):
    """In a copy of the workflow: lenet's dropout raised. Its jobs re-run for real, from scratch, and write
    a different OOF; matchboxnet's are left alone."""
    config = {**CONFIG, "training": {**CONFIG["training"], "run": ["lenet", "matchboxnet"]}}
    targets = [f"results/train/round1/{m}/fold0/oof.csv" for m in ("lenet", "matchboxnet")]
    repo = copy_of_the_workflow(tmp_path / "repo")
    workdir = share_backbone(trained, tmp_path / "work")
    assert snakemake(workdir, *targets, config=config, repo=repo).returncode == 0
    before = {t: (workdir / t).read_bytes() for t in targets}
    module = repo / "scripts/wavefold/architectures/lenet.py"
    module.write_text(module.read_text().replace("dropout: float = 0.3", "dropout: float = 0.6"))
    result = snakemake(workdir, *targets, config=config, repo=repo)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert set(re.findall(r"wildcards: .*model=(\w+)", output_of(result))) == {"lenet"}
    assert "resuming" not in (workdir / "logs/train/round1/lenet/fold0.log").read_text()
    assert (workdir / targets[0]).read_bytes() != before[targets[0]]
    assert (workdir / targets[1]).read_bytes() == before[targets[1]]


def test_adabn_reestimates_batch_norm_on_the_audio_predicted_in_a_mixed_order():
    """Two classes at -/+1000 (int16) in one feature, a BatchNorm fitted on them, the sign read off.
    Shifted by +3000, every clip reads as the second class; AdaBN re-centres on the shifted audio. The
    rows come sorted by class, as a cache sorted by label would: read in that order, batches would
    hold one class each and their mean variance would miss the gap between the classes."""
    import torch

    from wavefold.training import inference

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 500)  # sorted by class
    clips = np.stack([np.where(y == 0, -1000, 1000) + rng.normal(0, 100, len(y)), np.zeros(len(y))], 1)
    shifted = (clips + [3000, 0]).astype(np.int16)
    norm = torch.nn.BatchNorm1d(2, momentum=0.3)
    norm.running_mean[:] = torch.tensor([0.0, 0.0])
    norm.running_var[:] = torch.tensor([(1005 / 32768) ** 2, 1.0])
    reader = torch.nn.Linear(2, 2, bias=False)
    reader.weight.data = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    model = torch.nn.Sequential(norm, reader)
    device = torch.device("cpu")
    accuracy = lambda: (inference.predict(model, shifted, None, device, 50).argmax(1) == y).mean()  # noqa: E731
    assert accuracy() == 0.5  # all read as the second class
    rows = np.arange(200, 1000)  # a subset of the rows, then "extra" clips (as the fold's silence windows)
    extra = shifted[:200]
    assert inference.adapt_batch_norm(model, shifted, rows, device, 50, extra=extra) == 1
    assert accuracy() == 1.0
    assert norm.running_mean[0].item() * 32768 == pytest.approx(3000, abs=20)
    # The variance of all the clips (between the classes too), not the ~100^2 within one class.
    assert np.sqrt(norm.running_var[0].item()) * 32768 == pytest.approx(1000, rel=0.05)
    assert norm.momentum == 0.3 and not norm.training  # left as it was found, in eval mode
    assert inference.adapt_batch_norm(torch.nn.Linear(2, 2), shifted, None, device, 50) == 0  # nothing to adapt


def test_adabn_in_the_dag_changes_the_statistics_only_and_predicts_with_them(trained, tmp_path):
    """training.defaults.adapt_batch_norm: the job trains exactly as without it (the same weights as the
    fixture's job), then its OOF probabilities come from statistics re-estimated on its fold, and the
    test predictions from statistics re-estimated on the test audio: recomputed here, they match."""
    import torch

    from wavefold.training import classifier, inference

    defaults = {**CONFIG["training"]["defaults"], "adapt_batch_norm": True}
    config = {**CONFIG, "training": {**CONFIG["training"], "run": ["matchboxnet"], "defaults": defaults}}
    workdir = share_backbone(trained, tmp_path / "adabn")
    target = "results/predict/round1/matchboxnet/fold0.csv"
    result = snakemake(workdir, target, config=config)
    assert result.returncode == 0, output_of(result)[-3000:]
    n_test = len(pd.read_csv(trained / "results/index/test.csv"))
    logs = workdir / "logs"
    train_log = (logs / "train/round1/matchboxnet/fold0.log").read_text()
    assert "AdaBN: 12 BatchNorm layers re-estimated on the fold's" in train_log
    assert f"on the {n_test} test clips" in (logs / "predict_test/round1/matchboxnet/fold0.log").read_text()

    device = torch.device("cpu")
    adapted, space, _ = classifier.load(workdir / "results/train/round1/matchboxnet/fold0/model.pt", device)
    plain = classifier.load(trained / "results/train/round1/matchboxnet/fold0/model.pt", device)[0]
    for (name, a), (_, b) in zip(adapted.named_parameters(), plain.named_parameters()):
        assert torch.equal(a, b), name  # the same training: AdaBN comes after it
    assert not torch.equal(inference.batch_norm_layers(adapted)[0].running_mean,
                           inference.batch_norm_layers(plain)[0].running_mean)  # fmt: skip
    oof = [pd.read_csv(r / "results/train/round1/matchboxnet/fold0/oof.csv")[list(LABELS)] for r in (workdir, trained)]
    assert not np.allclose(*oof, atol=1e-3)  # the fold predicted with its own statistics

    clips = np.load(trained / "results/cache/test.npy", mmap_mode="r")
    shifts = inference.shifts_in_samples(CONFIG["training"]["tta_shift_ms"], 16000)
    written = pd.read_csv(workdir / target)[list(LABELS)].to_numpy()
    space = speech().label_space_of(space)
    as_saved = space.fold(inference.predict(adapted, clips, None, device, 256, shifts=shifts))
    assert not np.allclose(as_saved, written, atol=1e-3)  # made with other statistics than the fold's
    inference.adapt_batch_norm(adapted, clips, None, device, 256)
    recomputed = space.fold(inference.predict(adapted, clips, None, device, 256, shifts=shifts))
    np.testing.assert_allclose(recomputed, written, atol=1e-5)


def test_ema_is_what_the_job_scores_and_keeps_and_leaves_the_training_alone(trained, tmp_path):
    """training.defaults.ema_decay: the raw weights train exactly as without it (the same training curve
    as the fixture's job), and the kept model is their moving average: with a decay near 0 it is the
    raw weights themselves (the fixture's model), with a decay near 1 it stays at the first step's
    weights (far from them, and scoring worse on the fold)."""
    import torch

    from wavefold.training import classifier

    job = "results/train/round1/matchboxnet/fold0"
    plain = classifier.load(trained / job / "model.pt", torch.device("cpu"))[0].state_dict()
    plain_curve = pd.read_csv(trained / job / "curve.csv")
    kept = {}
    for decay in (1e-9, 0.99999):
        defaults = {**CONFIG["training"]["defaults"], "ema_decay": decay}
        config = {**CONFIG, "training": {**CONFIG["training"], "run": ["matchboxnet"], "defaults": defaults}}
        workdir = share_backbone(trained, tmp_path / str(decay))
        result = snakemake(workdir, f"{job}/oof.csv", config=config)
        assert result.returncode == 0, output_of(result)[-3000:]
        log = (workdir / "logs/train/round1/matchboxnet/fold0.log").read_text()
        assert f"moving average of the weights (ema_decay {decay:g})" in log
        curve = pd.read_csv(workdir / job / "curve.csv")
        assert curve["train_loss"].tolist() == pytest.approx(plain_curve["train_loss"].tolist(), abs=1e-6)
        kept[decay] = (classifier.load(workdir / job / "model.pt", torch.device("cpu"))[0].state_dict(), curve)
    near_raw, near_start = kept[1e-9][0], kept[0.99999][0]
    for name, value in plain.items():
        if value.is_floating_point():
            torch.testing.assert_close(near_raw[name], value, atol=1e-5, rtol=1e-4)
    moved = [name for name, value in plain.items() if value.is_floating_point()
             and not torch.allclose(near_start[name], value, atol=1e-3)]  # fmt: skip
    assert len(moved) > len(plain) // 2
    assert kept[0.99999][1]["val_acc"].iloc[-1] < plain_curve["val_acc"].iloc[-1]


def test_label_smoothing_makes_the_job_less_sure(trained, tmp_path):
    """training.defaults.label_smoothing: targets pulled toward the uniform mix make the model's top
    probability on its fold lower than the same job's without smoothing (6 epochs of lenet: one epoch
    leaves any model near uniform)."""
    job = "results/train/round1/lenet/fold0"
    top = {}
    for smoothing in (0.0, 0.4):
        defaults = {**CONFIG["training"]["defaults"], "epochs": 6, "label_smoothing": smoothing}
        config = {**CONFIG, "training": {**CONFIG["training"], "run": ["lenet"], "defaults": defaults}}
        workdir = share_backbone(trained, tmp_path / str(smoothing))
        result = snakemake(workdir, f"{job}/oof.csv", config=config)
        assert result.returncode == 0, output_of(result)[-3000:]
        top[smoothing] = pd.read_csv(workdir / job / "oof.csv")[list(LABELS)].max(axis=1).mean()
    assert top[0.4] < top[0.0] - 0.03, top
