#!/usr/bin/env python
"""GPU throughput of every architecture, for the day a GPU is at hand: training clips/s with AMP and
channels-last (the train rule's step), the input pipeline's share of a step, peak device memory, and
inference clips/s, for the six architectures and one timm backbone.

    python3 bench/gpu_throughput.py [--device auto] [--timm efficientnet_b0] [--clips 8192]
                                    [--batch-size 256] [--steps 40] [--architectures a b ...]

No snakemake, no workflow run, no download: the audio is synthetic 16-bit tone bursts in noise, made
in memory and written to a memory-mapped .npy in a temporary folder, read back as the training cache
is (gathered on a background thread, pinned, copied without blocking). The timm backbone has random
weights (its speed does not depend on them) and config/kaggle-gpu.yaml's front end: 64 mel bins
resized to 128 x 128. With the defaults it takes ~2-4 minutes on one H100 (at most 8 anywhere a GPU
runs it); on a CPU, give it a tiny size (--clips 64 --batch-size 8 --steps 2 --timm test_efficientnet).
Ratios are to lenet, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from wavefold import competitions  # noqa: E402
from wavefold.augment import AugmentSettings, augment_waveforms, spec_augment  # noqa: E402
from wavefold.cache import ClipWindows  # noqa: E402
from wavefold.devices import pick_device  # noqa: E402
from wavefold.features import int16_to_float  # noqa: E402
from wavefold.models import REGISTRY, parameter_count  # noqa: E402
from wavefold.settings.training import TrainSettings  # noqa: E402
from wavefold.training import optim  # noqa: E402
from wavefold.training.batches import Prefetcher, gather  # noqa: E402
from wavefold.training.classifier import Classifier  # noqa: E402
from wavefold.training.data import FoldData, epoch_plan, load_fold  # noqa: E402
from wavefold.training.inference import predict_clips  # noqa: E402

RATE = 16000
SPACE = competitions.get("tensorflow-speech-recognition-challenge").label_space("labels")


def synthetic_fold(folder: Path, clips: int, seed: int = 0) -> FoldData:
    """``clips`` one-second clips of a tone burst in noise, labelled at random, in a memory-mapped
    .npy; half of the speakers in fold 0 (validation), half training."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    audio = rng.normal(0, 0.05, (clips, RATE)) + 0.3 * np.sin(2 * np.pi * rng.uniform(200, 4000, (clips, 1)) * t)
    np.save(folder / "train.npy", (np.clip(audio, -1, 1) * 32767).astype(np.int16))
    labels = rng.choice(SPACE.classes, clips)
    groups = [f"speaker{i // 4}" for i in range(clips)]
    folds = pd.DataFrame({"id": [f"{label}/{i}.wav" for i, label in enumerate(labels)], "target": labels,
                          "label": labels, "group": groups, "windows": 1,
                          "fold": [int(g[7:]) % 2 for g in groups], "scored": True})  # fmt: skip
    noise = (rng.normal(0, 0.05, RATE * 4) * 32767).astype(np.int16)
    segments = pd.DataFrame({"name": "noise.wav", "fold": [0, 1], "start": [0, 2 * RATE], "length": 2 * RATE})
    silence = pd.DataFrame(columns=["id", "fold", "noise", "start", "gain", "label"])
    return load_fold(np.load(folder / "train.npy", mmap_mode="r"), noise, folds, silence, segments, 0, SPACE)


def measure_training(settings: TrainSettings, data: FoldData, device: torch.device, steps: int) -> dict:
    """The train rule's step (training/loop.py) timed ``steps`` times after 3 warm-up steps: clips/s,
    the share of the step spent waiting for the input pipeline, the peak device memory."""
    cuda = device.type == "cuda"
    batch_size = settings.batch_size
    model = Classifier(settings, len(SPACE.classes)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optim.optimizer(model, settings)
    constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    stepper = optim.Stepper(optimizer, constant, torch.amp.GradScaler(enabled=cuda), settings.accumulate)
    augment, generator = AugmentSettings(), torch.Generator(device=device).manual_seed(0)
    source, start, target = epoch_plan(data, settings, np.random.default_rng(0))
    repeats = int(np.ceil((steps + 3) * batch_size / len(source)))
    source, start, target = (np.tile(a, repeats) for a in (source, start, target))
    noise = torch.from_numpy(data.noise.astype(np.float32) / 32768).to(device)

    def make_batch(i):
        part = slice(i * batch_size, (i + 1) * batch_size)
        return gather(data.clips, data.noise, source[part], start[part], np.ones(batch_size), data.samples)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    waited = stepped = 0.0
    model.train()
    stepper.start_epoch(steps + 3)
    for i, batch in enumerate(Prefetcher(make_batch, steps + 3, pin=cuda)):
        began = time.perf_counter() if i == 0 else ended
        got = time.perf_counter()
        wave = augment_waveforms(int16_to_float(batch.to(device, non_blocking=True)), noise, augment, RATE, generator)
        labels = torch.from_numpy(target[i * batch_size : (i + 1) * batch_size]).to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=cuda):
            features = spec_augment(model.front(wave), augment, generator)
            if cuda and features.dim() == 4:
                features = features.contiguous(memory_format=torch.channels_last)
            loss = torch.nn.functional.cross_entropy(model.net(features).float(), labels)
        stepper.backward(loss, i)
        if cuda:
            torch.cuda.synchronize()
        ended = time.perf_counter()
        if i >= 3:  # the first steps warm up allocators and kernels
            waited += got - began
            stepped += ended - began
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
    return {"parameters": parameter_count(model.net), "train clips/s": steps * batch_size / stepped,
            "input share": waited / stepped, "peak MiB": peak, "model": model}  # fmt: skip


def measure_inference(model: Classifier, data: FoldData, device: torch.device, batch_size: int) -> float:
    """Clips per second of the prediction the predict_test rule runs (inference/predict_clips), on the
    validation fold; a first pass warms up."""
    rows = data.val_rows
    windows = ClipWindows.one_each(len(data.clips))
    predict_clips(model, data.clips, windows, rows[:batch_size], device, batch_size)
    began = time.perf_counter()
    predict_clips(model, data.clips, windows, rows, device, batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(rows) / (time.perf_counter() - began)


def settings_of(architecture: str, args) -> TrainSettings:
    if architecture != "timm":
        return TrainSettings(architecture=architecture, batch_size=args.batch_size)
    params = {"name": args.timm, **({"image_size": args.timm_image_size} if args.timm_image_size else {})}
    return TrainSettings(architecture="timm", params=params, batch_size=args.batch_size,
                         features={"n_mels": args.timm_mels})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--clips", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--architectures", nargs="*", default=sorted(REGISTRY), help="default: all (timm: --timm's)")
    parser.add_argument("--timm", default="efficientnet_b0", help="the timm backbone measured beside the six")
    parser.add_argument("--timm-mels", type=int, default=64)
    parser.add_argument("--timm-image-size", type=int, nargs=2, default=[128, 128])
    args = parser.parse_args()
    device = pick_device(args.device)
    started = time.perf_counter()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="wavefold-gpu-bench-") as folder:
        data = synthetic_fold(Path(folder), args.clips)
        for architecture in args.architectures:
            settings = settings_of(architecture, args)
            name = f"timm:{args.timm}" if architecture == "timm" else architecture
            result = measure_training(settings, data, device, args.steps)
            result["infer clips/s"] = measure_inference(result.pop("model"), data, device, 2 * args.batch_size)
            rows[name] = result
            print(f"{name}: done ({time.perf_counter() - started:.0f} s in all)", flush=True)
    table = pd.DataFrame.from_dict(rows, orient="index")
    for column in ("train clips/s", "infer clips/s"):
        table[f"{column.split()[0]} x lenet"] = table[column] / table.loc["lenet", column]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nthroughput on {gpu}: batch {args.batch_size}, {args.steps} steps after 3 warm-up, AMP and channels-last "
          f"on CUDA; {args.clips} synthetic 1-s clips; {time.perf_counter() - started:.0f} s in all")  # fmt: skip
    print(table.to_string(formatters={"parameters": "{:,}".format, "train clips/s": "{:,.0f}".format,
                                      "input share": "{:.1%}".format, "peak MiB": "{:,.0f}".format,
                                      "infer clips/s": "{:,.0f}".format, "train x lenet": "{:.2f}".format,
                                      "infer x lenet": "{:.2f}".format}))  # fmt: skip


if __name__ == "__main__":
    main()
