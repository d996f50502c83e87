"""Rule predict_test: test probabilities of one fold model, averaged over time-shift TTA."""

import numpy as np
import pandas as pd
import torch

from wavefold import competitions
from wavefold.cache import ClipWindows, RowReader
from wavefold.devices import DeviceLease, pick_device
from wavefold.steps import rule_step
from wavefold.training import classifier, inference

with rule_step(snakemake, "predict_test") as log, DeviceLease():
    inp, p = snakemake.input, snakemake.params
    device = pick_device(p.device)
    torch.set_num_threads(snakemake.threads)
    model, label_space, settings = classifier.load(inp.model, device)
    clips = RowReader(inp.clips)  # read a batch at a time: the test set never stays in memory
    if settings.adapt_batch_norm:  # as the out-of-fold probabilities were made: on the audio predicted
        layers = inference.adapt_batch_norm(model, clips, None, device, 256)
        log.info("AdaBN: %d BatchNorm layers re-estimated on the %d test clips", layers, len(clips))
    shifts = inference.shifts_in_samples(p.tta_shift_ms, p.sample_rate)
    index = pd.read_csv(inp.index)
    windows = ClipWindows.of_manifest(index)  # a long clip: the mean over its windows
    probabilities = inference.predict_clips(model, clips, windows, np.arange(len(index)), device, 256, shifts=shifts)
    space = competitions.get(p.competition).label_space_of(label_space)
    fnames = index["fname"].tolist()
    classifier.probability_table(fnames, space.fold(probabilities), space.labels, "fname").to_csv(
        snakemake.output[0], index=False, float_format="%.6g"
    )
    log.info("%d test clips (%d windows), TTA shifts %s samples", len(fnames), len(clips), shifts)
