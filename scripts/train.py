"""Rule train: one model on one fold, resumable; writes the model, OOF probabilities, curve and metrics."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wavefold import cache, competitions
from wavefold.folds import truth_table
from wavefold.devices import DeviceLease, pick_device
from wavefold.settings.training import TrainSettings, job_seed
from wavefold.steps import rule_step
from wavefold.tracking import flatten, live, summaries
from wavefold.tracking.after import training_tags
from wavefold.training import checkpoint, data, inference, loop, outputs

with rule_step(snakemake, "train") as log, DeviceLease():
    inp, out, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    train_settings = TrainSettings.from_config(p.settings)
    fold, round_ = int(wc.fold), int(wc.round)
    seed = job_seed(p.seed, round_, wc.model, fold)
    device = pick_device(p.device)
    torch.set_num_threads(snakemake.threads)  # concurrent jobs share the cores Snakemake gave them
    log.info(
        "model %s (%s), round %d, fold %d, seed %d, device %s, epoch selection: %s",
        wc.model,
        train_settings.architecture,
        round_,
        fold,
        seed,
        device,
        train_settings.epoch_selection,
    )
    # From round 2 on, pseudo-labelled test clips join the training side: labelled only by round r-1
    # models that never saw this fold's labels (rule pseudo_label).
    pseudo = pd.read_csv(inp.pseudo) if "pseudo" in inp.keys() else None
    test_clips = np.load(inp.test_clips, mmap_mode="r") if pseudo is not None else None
    test_windows = cache.ClipWindows.of_manifest(pd.read_csv(inp.test_index)) if pseudo is not None else None
    inner_share = train_settings.inner_share if train_settings.epoch_selection == "inner" else 0.0
    fold_data = data.load_fold(
        np.load(inp.clips, mmap_mode="r"),
        np.load(inp.noise),
        pd.read_csv(inp.folds),
        pd.read_csv(inp.silence),
        pd.read_csv(inp.noise_segments),
        fold,
        competitions.get(p.competition).label_space(train_settings.label_space),
        np.load(inp.variants, mmap_mode="r"),
        pd.read_csv(inp.variant_table)["source_row"].to_numpy(),
        test_clips,
        pseudo,
        train_settings.pseudo_noise,
        inner_share,
        seed,
        pseudo_soft=train_settings.pseudo_soft,
        test_windows=test_windows,
    )
    if pseudo is not None:
        log.info(
            "%d pseudo-labelled test clips available, %.0f%% of the labelled clips per epoch; %s targets",
            len(fold_data.pseudo_rows),
            100 * train_settings.pseudo_share,
            "soft (the blend's probabilities)" if fold_data.pseudo_probabilities is not None else "hard (its label)",
        )
    shifts = inference.shifts_in_samples(p.tta_shift_ms, p.sample_rate)
    # What this job is: a checkpoint of anything else (other code, data or settings) is never resumed.
    inputs = [path for key in inp.keys() for path in ([inp[key]] if isinstance(inp[key], str) else inp[key])]
    identity = checkpoint.job_identity(
        train_settings.fingerprint(), fold_data.fingerprint(), str(seed), str(shifts), files=inputs
    )
    paths = outputs.JobPaths(Path(out.model), Path(out.oof), Path(out.curve), Path(out.metrics), Path(p.checkpoint))
    # Live in MLflow: each epoch as it ends; FAILED if the job fails; a resumed job goes on in the same run.
    run_name, tags = f"round{round_}/{wc.model}/fold{fold}", training_tags(round_, wc.model, fold, train_settings.architecture)
    with live.tracked(live.Context.of(snakemake), run_name, tags, flatten(p.settings),
                      paths.checkpoint.with_name("mlflow-run.txt"), identity) as run:  # fmt: skip
        result = loop.train_fold(fold_data, train_settings, seed, paths, device, fold, identity, shifts, run.epoch)
        competition = competitions.get(p.competition)
        truth = truth_table(pd.read_csv(inp.folds), pd.read_csv(inp.silence))
        score = summaries.fold_score(competition, pd.read_csv(out.oof), truth)
        run.log(summaries.job_summary(competition, pd.read_csv(out.metrics), pd.read_csv(out.curve), score),
                artifacts=[out.model, out.curve, out.metrics], outputs=[out.curve, out.metrics])  # fmt: skip
    log.info("done: %s; fold %s %.4f", result, competition.metric_name, score)
