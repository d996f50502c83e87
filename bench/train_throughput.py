#!/usr/bin/env python
"""Training throughput per architecture, and the share of step time spent in the input pipeline.

For each architecture: a few hundred training steps on the cached demo audio exactly as the train
rule runs them (background gather from the memory-mapped cache, augmentation, features and model
on the device). Two timings per architecture, in the same run:
  input     the time the training loop waits for the next batch from the prefetcher
  step      the whole step: wait + transfer + augmentation + features + forward + backward
Target: input < 10% of step time for every architecture. On a GPU machine the same script prints
the GPU table (device auto-detected; --device to force).

Run after the workflow has cached the audio and made the folds:
    .venv/bin/python bench/train_throughput.py [--workdir .] [--steps 30] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from wavefold import competitions  # noqa: E402
from wavefold.augment import AugmentSettings, augment_waveforms, spec_augment  # noqa: E402
from wavefold.devices import pick_device  # noqa: E402
from wavefold.features import int16_to_float  # noqa: E402
from wavefold.models import REGISTRY, parameter_count  # noqa: E402
from wavefold.training.batches import Prefetcher, gather  # noqa: E402
from wavefold.training.classifier import Classifier  # noqa: E402
from wavefold.training.data import FoldData, epoch_plan, load_fold  # noqa: E402
from wavefold.settings.training import TrainSettings  # noqa: E402


def measure(name: str, data: FoldData, device: torch.device, steps: int, batch_size: int) -> dict:
    settings = TrainSettings(architecture=name, batch_size=batch_size)
    model = Classifier(settings, 12).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    augment = AugmentSettings()
    generator = torch.Generator(device=device).manual_seed(0)
    rng = np.random.default_rng(0)
    source, start, target = epoch_plan(data, settings, rng)
    reps = int(np.ceil((steps + 3) * batch_size / len(source)))
    source, start, target = (np.tile(a, reps) for a in (source, start, target))
    gain = np.ones(len(source))
    noise = torch.from_numpy(data.noise.astype(np.float32) / 32768).to(device)

    def make_batch(i):
        part = slice(i * batch_size, (i + 1) * batch_size)
        return gather(data.clips, data.noise, source[part], start[part], gain[part], data.samples)

    cuda = device.type == "cuda"
    waited = stepped = 0.0
    batches = iter(Prefetcher(make_batch, steps + 3, pin=cuda))
    model.train()
    for i in range(steps + 3):
        began = time.perf_counter()
        batch = next(batches)
        got = time.perf_counter()
        wave = augment_waveforms(int16_to_float(batch.to(device, non_blocking=True)), noise, augment, 16000, generator)
        labels = torch.from_numpy(target[i * batch_size : (i + 1) * batch_size]).to(device)
        with torch.autocast(device.type, enabled=cuda):
            logits = model.net(spec_augment(model.front(wave), augment, generator))
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= 3:  # the first steps warm up allocators and kernels
            waited += got - began
            stepped += time.perf_counter() - began
    return {"architecture": name, "parameters": parameter_count(model.net), "clips/s": steps * batch_size / stepped,
            "input share": waited / stepped}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--architectures", nargs="*", default=sorted(REGISTRY))
    args = parser.parse_args()
    results = args.workdir / "results"
    if not (results / "folds" / "folds.csv").is_file():
        sys.exit(f"{results}/folds/folds.csv is missing: run the workflow to the folds first in {args.workdir}")
    device = pick_device(args.device)
    data = load_fold(
        np.load(results / "cache/train.npy", mmap_mode="r"), np.load(results / "cache/noise.npy"),
        pd.read_csv(results / "folds/folds.csv"), pd.read_csv(results / "folds/silence.csv"),
        pd.read_csv(results / "folds/noise_segments.csv"), 0,
        competitions.get("tensorflow-speech-recognition-challenge").label_space("labels"),
    )  # fmt: skip
    rows = [measure(name, data, device, args.steps, args.batch_size) for name in args.architectures]
    table = pd.DataFrame(rows).set_index("architecture")
    baseline = table.loc["lenet", "clips/s"] if "lenet" in table.index else table["clips/s"].iloc[0]
    table["x lenet"] = table["clips/s"] / baseline
    print(f"training throughput on {device} ({torch.get_num_threads()} threads), batch {args.batch_size}, "
          f"{args.steps} steps after 3 warm-up steps")  # fmt: skip
    print(table.to_string(formatters={"clips/s": "{:,.0f}".format, "input share": "{:.1%}".format,
                                      "x lenet": "{:.2f}".format, "parameters": "{:,}".format}))  # fmt: skip
    missed = table.index[table["input share"] >= 0.10].tolist()
    print("target input share < 10%: " + ("met for every architecture" if not missed else f"MISSED for {missed}"))


if __name__ == "__main__":
    main()
