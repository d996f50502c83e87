"""Rule predict_test: test probabilities of one fold model, averaged over time-shift TTA."""

import numpy as np
import pandas as pd
import torch

from wavefold import training
from wavefold.devices import DeviceLease
from wavefold.steps import rule_step

with rule_step(snakemake, "predict_test") as log, DeviceLease():
    inp, p = snakemake.input, snakemake.params
    device = training.pick_device(p.device)
    torch.set_num_threads(snakemake.threads)
    saved = torch.load(inp.model, map_location=device, weights_only=False)
    settings = training.TrainSettings.from_config(saved["settings"])
    model = training.Classifier(settings, len(saved["label_space"])).to(device)
    model.load_state_dict(saved["state_dict"])
    clips = np.load(inp.clips, mmap_mode="r")
    shifts = tuple(int(round(ms * clips.shape[1] / 1000)) for ms in p.shifts_ms)
    probabilities = training.predict(model, clips, None, device, 256, shifts=shifts)
    labels12 = training.to_labels12(probabilities, saved["label_space"])
    fnames = pd.read_csv(inp.index)["fname"].tolist()
    training.probability_table(fnames, labels12, "fname").to_csv(snakemake.output[0], index=False, float_format="%.6g")
    log.info("%d test clips, TTA shifts %s samples", len(fnames), shifts)
