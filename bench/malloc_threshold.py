"""predict_test's memory with glibc's defaults, with freed memory handed back every few batches (what
the workflow does, wavefold.memory) and with glibc's mmap threshold fixed instead.

    python bench/malloc_threshold.py [--rows 20000] [--workdir DIR] [--batch-size 256]

Writes a test cache of ``--rows`` synthetic one-second clips (int16, the cache's format) and runs the
predict_test step's own loop over it — RowReader, ``inference.predict_clips`` with three TTA shifts,
batches of 256, a LeNet with PCEN features (the default lenet), torch on the machine's cores — three
times, each in a fresh process: glibc's defaults and nothing handed back (the baseline, the workflow
before), ``release_freed`` every ``inference.RELEASE_EVERY`` batches (the workflow now), and glibc's
mmap threshold fixed at 1 MB. It prints each run's time, peak memory and resident memory after the
first batches and at the end, and their ratios to the baseline. The baseline's growth varies from
run to run with the threads' timing: run it more than once.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

BATCH = 256


def write_cache(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_2_0(stream, {"descr": "<i2", "fortran_order": False, "shape": (rows, 16000)})
        for begin in range(0, rows, 5000):
            stream.write(rng.integers(-3000, 3000, (min(5000, rows - begin), 16000), dtype=np.int16).tobytes())


SETTINGS = {
    "default": "glibc's defaults, nothing handed back (baseline)",
    "release": "release_freed every RELEASE_EVERY batches (the workflow)",
    "pinned": "mmap threshold fixed at 1 MB",
}


def sample_every(rows: int, batch: int) -> int:
    """Batches between two looks at resident memory: 10, or fewer on a short run (at least 3 looks)."""
    return max(1, min(10, -(-rows // batch) // 3))


def probe(path: Path, setting: str, batch: int = BATCH) -> dict:
    """One pass of predict_test's loop over the cache at ``path``; resident memory every few batches."""
    import psutil
    import torch

    from wavefold.cache import ClipWindows, RowReader
    from wavefold.memory import pin_mmap_threshold
    from wavefold.training import inference
    from wavefold.training.classifier import Classifier
    from wavefold.settings.training import TrainSettings

    if setting == "pinned":
        assert pin_mmap_threshold()
    if setting != "release":
        inference.RELEASE_EVERY = 10**9
    model = Classifier(TrainSettings.from_config({"architecture": "lenet", "features": {"compression": "pcen"}}), 31)
    clips = RowReader(path)
    process, resident = psutil.Process(), []
    batches = inference._batches

    every = sample_every(len(clips), batch)

    def sampled(*args, **kwargs):  # the step's own batches, with a look at the process between them
        for i, wave in enumerate(batches(*args, **kwargs)):
            if i % every == 0:
                resident.append(process.memory_info().rss / 2**20)
            yield wave

    inference._batches = sampled
    started = time.perf_counter()
    rows = len(clips)
    inference.predict_clips(model, clips, ClipWindows.one_each(rows), np.arange(rows), torch.device("cpu"), batch,
                            shifts=(0, 800, -800))  # fmt: skip
    return {"seconds": time.perf_counter() - started, "resident": resident,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wavefold-malloc"))
    parser.add_argument("--batch-size", type=int, default=BATCH, help="clips per batch (the step's: 256)")
    parser.add_argument("--probe", choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache = args.workdir / f"test_{args.rows}.npy"
    if args.probe:
        print(json.dumps(probe(cache, args.probe, args.batch_size)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not cache.exists():
        write_cache(cache, args.rows)
    rows, every = [], sample_every(args.rows, args.batch_size)  # as each probe samples
    for setting in SETTINGS:
        command = [sys.executable, __file__, "--rows", str(args.rows), "--workdir", str(args.workdir),
                   "--probe", setting, "--batch-size", str(args.batch_size)]  # fmt: skip
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        resident = result["resident"]
        rows.append({"setting": SETTINGS[setting],
                     "seconds": result["seconds"], "peak MB": result["peak_mb"],
                     f"resident after {every} batches": resident[1], "resident at the end": resident[-1],
                     "growth per 100 batches": (resident[-1] - resident[1]) / (len(resident) - 2) * 100 / every,
                     })  # fmt: skip
    table = pd.DataFrame(rows).set_index("setting")
    for column in ("seconds", "peak MB"):
        table[f"{column} x baseline"] = table[column] / table[column].iloc[0]
    batches = -(-args.rows // args.batch_size)
    print(f"predict_test's loop over {args.rows} test clips ({batches} batches of {args.batch_size}, 3 TTA shifts):\n")
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()
