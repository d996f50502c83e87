"""How each step's time and memory grow with the data: the speech challenge at its real size.

    python bench/scale.py [--workdir DIR] [--fractions 0.1 0.3 1.0] [--cores 2] [--keep] [--workflow DIR]

For each fraction of the real competition (64,727 train files, 158,538 test clips, six noise
recordings), it writes a competition of that size in the real layout and archive format — cheap
synthetic audio (a tone in noise per clip, not speech; the .7z archives stored without compression
to keep the bench fast) — and runs the real workflow on it from the download zip (``source:`` that
zip) to the test predictions of one model: download -> extract -> index -> cache_audio -> folds ->
augment -> train (one fold, one epoch) -> predict_test. Snakemake's benchmark files give each step's
wall time and peak memory (max RSS).

The table prints both per fraction, and the growth from the smallest fraction to each larger one
against the growth of the data: a ratio near 1 is linear; above 1 grows faster than the data.
Memory that does not grow with the data is what a streamed step should show; the test set is
~5 GB as int16 at full size, so a step whose peak approaches that holds it in memory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import py7zr
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from wavefold import archives  # noqa: E402
from wavefold.competitions.tensorflow_speech import NOISE_FILES, NOISE_FOLDER, WORDS  # noqa: E402

SLUG = "tensorflow-speech-recognition-challenge"
REAL = {"train": 64727, "test": 158538, "speakers": 1881}
RATE = 16000
STORED = [{"id": py7zr.FILTER_COPY}]  # no compression: the bench measures the workflow, not LZMA
STEPS = ["download", "extract", "index", "cache_audio", "folds", "augment", "train", "predict_test"]
CONFIG = """
source: {zip}
folds: {{n_folds: 3}}
offline_augment: {{variants_per_clip: 0}}
training: {{run: [lenet], defaults: {{epochs: 1, batch_size: 256}}}}
tracking: {{mlflow: false}}
"""


def _write_clips(job: tuple[Path, list[str], int]) -> None:
    """One-second clips: a tone at a random pitch in white noise (cheap to make, real WAV files)."""
    root, paths, seed = job
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    for path in paths:
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(RATE)
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, wave, RATE, subtype="PCM_16")


def make_competition(out: Path, fraction: float, workers: int) -> tuple[Path, dict]:
    """The competition's download zip at ``fraction`` of the real size; returns it and its counts."""
    rng = np.random.default_rng(7)
    n_train, n_test = round(REAL["train"] * fraction), round(REAL["test"] * fraction)
    speakers = [f"{v:08x}" for v in rng.choice(16**8, max(3, round(REAL["speakers"] * fraction)), replace=False)]
    staging = out / "staging"
    train = [f"train/audio/{WORDS[i % len(WORDS)]}/{speakers[rng.integers(len(speakers))]}_nohash_{i}.wav"
             for i in range(n_train)]  # fmt: skip
    names = [f"clip_{v:09x}.wav" for v in rng.choice(16**9, n_test, replace=False)]
    test = [f"test/audio/{name}" for name in names]
    chunks = [(staging, part.tolist(), i) for i, part in enumerate(np.array_split(np.array(train + test), 64))]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_write_clips, chunks))
    noise = staging / "train" / "audio" / NOISE_FOLDER
    noise.mkdir(parents=True, exist_ok=True)
    for name in NOISE_FILES:
        sf.write(noise / name, 0.1 * rng.standard_normal(60 * RATE), RATE, subtype="PCM_16")
    pd.DataFrame({"fname": names, "label": "silence"}).to_csv(staging / "sample_submission.csv", index=False)
    packed = out / "archives"
    packed.mkdir(parents=True, exist_ok=True)
    for archive, member in (("train.7z", "train"), ("test.7z", "test"), ("sample_submission.7z", "sample_submission.csv")):
        with py7zr.SevenZipFile(packed / archive, "w", filters=STORED) as seven:
            seven.writeall(staging / member, arcname=member)
    shutil.rmtree(staging)  # before the zip: at full size each copy of the audio is 7 GB
    zip_path = out / f"{SLUG}.zip"
    archives.pack_competition_zip([packed / n for n in ("train.7z", "test.7z", "sample_submission.7z")], zip_path)
    shutil.rmtree(packed)
    return zip_path, {"train": n_train, "test": n_test, "zip_gb": zip_path.stat().st_size / 1e9}


def run_workflow(workdir: Path, zip_path: Path, cores: int, workflow: Path = REPO) -> None:
    (workdir / "scale.yaml").write_text(CONFIG.format(zip=zip_path))
    command = [str(Path(sys.executable).with_name("snakemake")), "-s", str(workflow / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workflow / "config" / "config.yaml"), str(workdir / "scale.yaml"),
               "--cores", str(cores), "results/predict/round1/lenet/fold0.csv"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"snakemake failed in {workdir}:\n{(result.stdout + result.stderr)[-4000:]}")


def step_costs(workdir: Path) -> dict[str, tuple[float, float]]:
    """Step -> (seconds, peak MB) from Snakemake's benchmark files, summed (time) and maxed (memory)
    over a step's jobs."""
    costs = {}
    for step in STEPS:
        files = sorted((workdir / "benchmarks").glob(f"{step}.tsv")) + sorted((workdir / "benchmarks" / step).rglob("*.tsv"))
        if files:
            table = pd.concat([pd.read_csv(f, sep="\t") for f in files])
            costs[step] = (float(table["s"].sum()), float(pd.to_numeric(table["max_rss"], errors="coerce").max()))
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wavefold-scale"))
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep each fraction's files (tens of GB at full size)")
    parser.add_argument("--workflow", type=Path, default=REPO, help="the workflow to run (default: this repository)")
    args = parser.parse_args()
    rows = []
    for fraction in sorted(args.fractions):
        workdir = args.workdir / f"fraction-{fraction:g}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        started = time.perf_counter()
        zip_path, counts = make_competition(workdir / "download", fraction, args.cores)
        made = time.perf_counter() - started
        print(f"fraction {fraction:g}: {counts['train']:,} train, {counts['test']:,} test clips, "
              f"{counts['zip_gb']:.2f} GB zip, made in {made:.0f} s", flush=True)  # fmt: skip
        started = time.perf_counter()
        run_workflow(workdir, zip_path, args.cores, args.workflow)
        wall = time.perf_counter() - started
        for step, (seconds, peak) in step_costs(workdir).items():
            rows.append({"fraction": fraction, "step": step, "seconds": seconds, "peak_mb": peak})
            print(f"  {step:14s} {seconds:8.1f} s {peak:8.0f} MB", flush=True)
        rows.append({"fraction": fraction, "step": "workflow (wall)", "seconds": wall, "peak_mb": np.nan})
        print(f"  workflow (wall) {wall:7.1f} s", flush=True)
        pd.DataFrame(rows).to_csv(args.workdir / "scale.csv", index=False)  # kept as the fractions finish
        if not args.keep:
            shutil.rmtree(workdir)
    table = pd.DataFrame(rows)
    base = min(args.fractions)
    seconds = table.pivot(index="step", columns="fraction", values="seconds")
    peak = table.pivot(index="step", columns="fraction", values="peak_mb")
    order = [s for s in [*STEPS, "workflow (wall)"] if s in seconds.index]
    out = pd.DataFrame(index=order)
    for fraction in sorted(args.fractions):
        out[f"s @{fraction:g}"] = seconds.loc[order, fraction].round(1)
        out[f"MB @{fraction:g}"] = peak.loc[order, fraction].round(0)
    for fraction in sorted(args.fractions):
        if fraction != base:
            growth = fraction / base
            out[f"time growth /data growth ({base:g}->{fraction:g})"] = (seconds.loc[order, fraction] / seconds.loc[order, base] / growth).round(2)
    pd.set_option("display.width", 250)
    print(out.to_string())
    print(f"\nThe baseline is the {base:g} run of this same invocation; a ratio of 1 is linear growth. At full size "
          "the test set is 5.07 GB as int16.")  # fmt: skip


if __name__ == "__main__":
    main()
