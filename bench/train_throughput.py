#!/usr/bin/env python
"""Training throughput per architecture, and the share of step time spent in the input pipeline.

For each architecture: a few hundred training steps on the cached demo audio exactly as the train
rule runs them (background gather from the memory-mapped cache, augmentation, features and model
on the device, AMP and channels-last on CUDA), timed by bench/gpu_throughput.py's measure_training;
that script does the same without a workflow run, on synthetic audio, with memory and inference. Two timings per architecture, in the same run:
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
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from gpu_throughput import measure_training  # noqa: E402  (this folder: the same step, timed alike)
from wavefold import competitions  # noqa: E402
from wavefold.devices import pick_device  # noqa: E402
from wavefold.models import REGISTRY  # noqa: E402
from wavefold.training.data import FoldData, load_fold  # noqa: E402
from wavefold.settings.training import TrainSettings  # noqa: E402


def measure(name: str, data: FoldData, device: torch.device, steps: int, batch_size: int) -> dict:
    """gpu_throughput's timing of the train rule's step, on the demo's cache."""
    result = measure_training(TrainSettings(architecture=name, batch_size=batch_size), data, device, steps)
    return {"architecture": name, "parameters": result["parameters"], "clips/s": result["train clips/s"],
            "input share": result["input share"]}  # fmt: skip


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
