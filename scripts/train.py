"""Rule train: one model on one fold, resumable; writes the model, OOF probabilities, curve and metrics."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wavefold import training
from wavefold.devices import DeviceLease
from wavefold.steps import rule_step

with rule_step(snakemake, "train") as log, DeviceLease():
    inp, out, p, wc = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards
    settings = training.TrainSettings.from_config(p.settings)
    fold, round_ = int(wc.fold), int(wc.round)
    seed = training.job_seed(p.seed, round_, wc.model, fold)
    device = training.pick_device(p.device)
    torch.set_num_threads(snakemake.threads)  # concurrent jobs share the cores Snakemake gave them
    log.info("model %s (%s), round %d, fold %d, seed %d, device %s", wc.model, settings.architecture, round_, fold, seed, device)
    # From round 2 on, the previous round's pseudo-labelled test clips join the training side.
    pseudo = pd.read_csv(inp.pseudo) if "pseudo" in inp.keys() else None
    test_clips = np.load(inp.test_clips, mmap_mode="r") if pseudo is not None else None
    data = training.load_fold(
        np.load(inp.clips, mmap_mode="r"), np.load(inp.noise), pd.read_csv(inp.folds), pd.read_csv(inp.silence),
        pd.read_csv(inp.noise_segments), fold, settings.label_space,
        np.load(inp.variants, mmap_mode="r"), pd.read_csv(inp.variant_table)["source_row"].to_numpy(),
        test_clips, pseudo, settings.pseudo_noise,
    )  # fmt: skip
    if pseudo is not None:
        log.info("%d pseudo-labelled test clips available, %.0f%% of the labelled clips per epoch",
                 len(data.pseudo_rows), 100 * settings.pseudo_share)  # fmt: skip
    paths = training.JobPaths(Path(out.model), Path(out.oof), Path(out.curve), Path(out.metrics), Path(p.checkpoint))
    result = training.train_fold(data, settings, seed, paths, device, fold)
    log.info("done: %s", result)
