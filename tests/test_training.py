"""Training through the real snakemake on the tiny demo: what re-trains when settings or code change,
resume after a kill, GPU leases, AdaBN's wiring; the epoch plans on the backbone's real caches. That
the loop learns, on every architecture, and what EMA and label smoothing do: test_learning.py."""

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import SPEECH_RUN, copy_tree, edited, from_backbone, output_of, snakemake, speech
from test_dag import jobs_planned
from wavefold.competitions.tensorflow_speech import LABELS
from wavefold.training.batches import gather
from wavefold.training.data import epoch_plan, load_fold, pseudo_draw
from wavefold.settings.training import TrainSettings, job_seed

LABELS12, WORDS31 = speech().label_space("labels"), speech().label_space("words31")
CONFIG = SPEECH_RUN
#: One short job: what the tests that train a job of their own run.
ONE_EPOCH = {**CONFIG, "training": {**CONFIG["training"], "defaults": {"epochs": 1, "batch_size": 32}}}


def with_training(config, **training):
    return {**config, "training": {**config["training"], **training}}


@pytest.mark.dag
def test_changing_one_models_settings_retrains_only_that_model(speech_run):
    """lenet's learning rate changed: round 1 re-trains lenet's folds and nothing of matchboxnet; what
    follows (round 1's blend, the pseudo-labels, round 2, which learns from them) re-runs too."""
    models = {**CONFIG["training"].get("models", {}), "lenet": {"architecture": "lenet", "lr": 0.01}}
    result = snakemake(speech_run, "--dry-run", config=with_training(CONFIG, models=models))
    assert result.returncode == 0, output_of(result)[-3000:]
    round1 = set(re.findall(r"wildcards: round=1, model=(\w+)", output_of(result)))
    assert round1 == {"lenet"}
    downstream = {"blend", "pseudo_label", "final_round", "submission", "score_local", "report_figures"}
    assert {"train", "predict_test", "average_folds", "cv_table"} | downstream <= jobs_planned(result)
    assert not {"index", "cache_audio", "folds", "augment"} & jobs_planned(result)


@pytest.mark.dag
def test_training_parts(speech_backbone):
    trained = speech_backbone
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


@pytest.mark.dag
def test_pseudo_labelled_clips_join_the_training_side_only(speech_backbone):
    trained = speech_backbone
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


@pytest.mark.dag
def test_soft_pseudo_labels_train_toward_each_clips_own_probabilities(speech_backbone):
    trained = speech_backbone
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


@pytest.mark.dag
def test_resume_after_a_kill_gives_the_same_result(speech_run, speech_backbone, tmp_path, workflow):
    """The shared run's lenet fold-0 job, killed with its snakemake after its first epoch and run
    again: it resumes from its checkpoint and ends byte for byte where the uninterrupted job ended."""
    config = CONFIG
    target = "results/train/round1/lenet/fold0/oof.csv"
    reference = speech_run
    from_backbone(speech_backbone, tmp_path / "killed")

    killed = tmp_path / "killed"
    (killed / "test-config.yaml").write_text(yaml.safe_dump(config))
    command = [str(os.path.join(os.path.dirname(sys.executable), "snakemake")), "-s", str(workflow / "Snakefile"),
               "--directory", str(killed), "--configfile", str(workflow / "config/config.yaml"),
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


@pytest.mark.dag
def test_concurrent_gpu_jobs_never_share_a_device(speech_backbone, tmp_path):
    """Two simulated GPUs, snakemake allowed four GPU jobs at once: the leases keep one job per device."""
    config = with_training(ONE_EPOCH, run=["lenet"])
    workdir = from_backbone(speech_backbone, tmp_path / "gpus")
    env = {**os.environ, "WAVEFOLD_GPU_IDS": "0,1", "WAVEFOLD_LOCK_DIR": str(tmp_path / "leases")}
    env.pop("SLURM_JOB_ID", None)
    result = snakemake(workdir, "--cores", "4", "--resources", "gpu=4", "--set-threads", "train=1",
                       "predict_test=1", "--", "results/cv/round1/cv.csv", "results/predict/round1/lenet.csv",
                       config=config, env=env)  # fmt: skip
    assert result.returncode == 0, output_of(result)[-3000:]
    intervals = []
    for log in (workdir / "logs").glob("*/round1/*/fold*.log"):
        text = log.read_text()
        leased = re.search(r"^(\S+ \S+) INFO wavefold.devices: leased GPU (\d)", text, flags=re.M)
        released = re.search(r"^(\S+ \S+) INFO wavefold.devices: released GPU (\d)", text, flags=re.M)
        assert leased and released, log
        times = [pd.Timestamp(m[1].replace(",", ".")) for m in (leased, released)]
        intervals.append((leased[2], *times))
    assert len(intervals) == 4  # 2 train + 2 predict_test jobs
    for gpu, start, end in intervals:
        for other_gpu, other_start, other_end in intervals:
            if (start, end) != (other_start, other_end) and gpu == other_gpu:
                assert end <= other_start or other_end <= start, f"two jobs on GPU {gpu} at once"
    overlapping = any(a[1] < b[2] and b[1] < a[2] for a in intervals for b in intervals if a is not b)
    assert overlapping and {gpu for gpu, *_ in intervals} == {"0", "1"}  # both devices were busy at once


@pytest.mark.dag
def test_changed_offline_augmentation_retrains_and_changes_the_oof(speech_run, tmp_path):
    """The old checkpoint bug: the job re-ran, found a finished checkpoint and wrote the old OOF again."""
    target = "results/train/round1/lenet/fold0/oof.csv"
    assert not (speech_run / "results/train/round1/lenet/fold0/checkpoint").exists()  # removed once complete
    workdir = copy_tree(speech_run, tmp_path / "work")
    changed = {**CONFIG, "offline_augment": {"speed": [0.6, 0.7], "kinds": ["speed"]}}
    result = snakemake(workdir, target, config=changed)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert set(re.findall(r"rule (\w+):", output_of(result))) == {"augment", "train"}
    assert "resuming" not in (workdir / "logs/train/round1/lenet/fold0.log").read_text()
    assert (workdir / target).read_bytes() != (speech_run / target).read_bytes()


@pytest.mark.dag
def test_an_edited_architecture_retrains_only_its_models_and_changes_their_oof(speech_run, tmp_path):
    """In the session's copy of the workflow, lenet's dropout raised: a dry run of the whole run plans
    lenet's jobs and no other model's; run, lenet's round-1 job re-trains for real, from scratch, and
    writes a different OOF; matchboxnet's is left alone."""
    targets = [f"results/train/round1/{m}/fold0/oof.csv" for m in ("lenet", "matchboxnet")]
    workdir = copy_tree(speech_run, tmp_path / "work")
    with edited("scripts/wavefold/architectures/lenet.py", "dropout: float = 0.3", "dropout: float = 0.6"):
        planned = snakemake(workdir, "--dry-run", config=CONFIG)
        assert planned.returncode == 0, output_of(planned)[-3000:]
        assert set(re.findall(r"wildcards: round=1, model=(\w+)", output_of(planned))) == {"lenet"}
        result = snakemake(workdir, *targets, config=CONFIG)
    assert result.returncode == 0, output_of(result)[-3000:]
    assert set(re.findall(r"wildcards: .*model=(\w+)", output_of(result))) == {"lenet"}
    assert "resuming" not in (workdir / "logs/train/round1/lenet/fold0.log").read_text()
    assert (workdir / targets[0]).read_bytes() != (speech_run / targets[0]).read_bytes()
    assert (workdir / targets[1]).read_bytes() == (speech_run / targets[1]).read_bytes()


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


@pytest.mark.dag
def test_adabn_in_the_dag_changes_the_statistics_only_and_predicts_with_them(speech_run, speech_backbone, tmp_path):
    """training.defaults.adapt_batch_norm: the job trains exactly as without it (the same weights as the
    shared run's job), then its OOF probabilities come from statistics re-estimated on its fold, and the
    test predictions from statistics re-estimated on the test audio: recomputed here, they match."""
    import torch

    from wavefold.training import classifier, inference

    trained = speech_run
    defaults = {**CONFIG["training"]["defaults"], "adapt_batch_norm": True}
    config = with_training(CONFIG, run=["matchboxnet"], defaults=defaults)
    workdir = from_backbone(speech_backbone, tmp_path / "adabn")
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
    shifts = inference.shifts_in_samples(config["training"]["tta_shift_ms"], 16000)
    written = pd.read_csv(workdir / target)[list(LABELS)].to_numpy()
    space = speech().label_space_of(space)
    as_saved = space.fold(inference.predict(adapted, clips, None, device, 256, shifts=shifts))
    assert not np.allclose(as_saved, written, atol=1e-3)  # made with other statistics than the fold's
    inference.adapt_batch_norm(adapted, clips, None, device, 256)
    recomputed = space.fold(inference.predict(adapted, clips, None, device, 256, shifts=shifts))
    np.testing.assert_allclose(recomputed, written, atol=1e-5)
