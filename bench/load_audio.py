#!/usr/bin/env python
"""Random-access clip loading: the int16 cache (memory-mapped) vs decoding each WAV per clip.

The same N random training clips are loaded four ways in one run:
  librosa.load(path)              librosa's default call (resamples to 22,050 Hz), common in notebooks
  librosa.load(path, sr=16000)    the same at the native rate (no resampling)
  soundfile.read(path, int16)     the fastest per-file decoder
  cache, clip by clip             np.load(mmap_mode="r"), then one row per clip
  cache, one batch                array[sorted indices]: what a training step does
All files are read once before timing so that every method reads from the page cache (the
comparison is decoding and Python overhead, not the disk; from a cold disk the cache gains more,
since it reads 32 KB per clip with no file-system lookups). Targets for the cache, clip by clip:
>= 50x librosa.load and >= 10x soundfile.read.

Run after the workflow has cached the audio (./wavefold run, or snakemake --cores all):
    .venv/bin/python bench/load_audio.py [--workdir .] [--clips 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("."), help="the workflow's working directory")
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import librosa
    import soundfile as sf

    manifest_path = args.workdir / "results/index/train.csv"
    cache_path = args.workdir / "results/cache/train.npy"
    if not cache_path.is_file():
        sys.exit(f"{cache_path} is missing: run the workflow first (./wavefold run) in {args.workdir}")
    manifest = pd.read_csv(manifest_path)
    # The extracted competition the index was made from: resources/<dataset>/extracted/.
    roots = [r for r in sorted((args.workdir / "resources").glob("*/extracted")) if (r / manifest.loc[0, "path"]).is_file()]
    if not roots:
        sys.exit(f"no extracted competition under {args.workdir / 'resources'} holds {manifest.loc[0, 'path']}: "
                 "run the workflow there first")  # fmt: skip
    root = roots[0]

    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(manifest), size=min(args.clips, len(manifest)), replace=False)
    paths = [str(root / manifest.loc[i, "path"]) for i in rows]
    cached = np.load(cache_path, mmap_mode="r")
    rows_of = cached.view(np.ndarray)  # plain ndarray view of the mapping: no memmap bookkeeping per row
    sorted_rows = np.sort(rows)
    for path in paths:  # warm the page cache for the per-file methods
        Path(path).read_bytes()
    np.asarray(cached[np.sort(rows)]).sum()

    methods = {
        "librosa.load": lambda: [librosa.load(p) for p in paths],
        "librosa.load sr=16000": lambda: [librosa.load(p, sr=16000) for p in paths],
        "soundfile.read": lambda: [sf.read(p, dtype="int16") for p in paths],
        "cache, clip by clip": lambda: [rows_of[i].copy() for i in rows],
        "cache, one batch": lambda: rows_of[sorted_rows],  # fancy indexing copies once
    }
    librosa.load(paths[0], sr=16000)  # import-time and first-call costs are not per-clip costs
    seconds = {name: best_time(function, args.repeats) for name, function in methods.items()}

    rate = {name: len(rows) / s for name, s in seconds.items()}
    print(f"random-access loading of {len(rows)} clips from {args.workdir} (best of {args.repeats})")
    print(f"{'method':<24}{'clips/s':>12}{'x librosa':>12}{'x soundfile':>13}")
    for name in methods:
        print(f"{name:<24}{rate[name]:>12,.0f}{rate[name] / rate['librosa.load']:>12.1f}"
              f"{rate[name] / rate['soundfile.read']:>13.1f}")  # fmt: skip
    cache_rate = rate["cache, clip by clip"]
    for baseline, target in (("librosa.load", 50), ("librosa.load sr=16000", 50), ("soundfile.read", 10)):
        verdict = "met" if cache_rate >= target * rate[baseline] else "MISSED"
        print(f"target: cache clip by clip >= {target}x {baseline}: {cache_rate / rate[baseline]:.1f}x, {verdict}")


if __name__ == "__main__":
    main()
