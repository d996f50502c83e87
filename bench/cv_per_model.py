#!/usr/bin/env python
"""Cross-validated accuracy of every named model on the default demo, with its cost, against the
baseline (lenet) measured in the same run.

    python bench/cv_per_model.py [--workdir DIR] [--cores N] [--models a b ...] [--reuse]

Runs the real snakemake with the repository's defaults (config/config.yaml) and every model under
`training.models` in `training.run`, up to the round-1 CV table (results/cv/round1/cv.csv): one
training job per model and fold, no test prediction. The work folder is kept, so a run that was
stopped goes on where it was (finished folds are cached, a killed job resumes from its checkpoint);
--reuse only reads the results already there. Prints per model: parameters, fold accuracy, mean and
std, training minutes per fold and seconds per epoch (from benchmarks/ and the learning curves),
and accuracy and time as a ratio to lenet.

On this machine's 2 CPU cores the six defaults take ~2.5 h (res15 alone ~1 h); on a GPU, minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from wavefold.competitions.tensorflow_speech import LABELS  # noqa: E402
from wavefold.models import parameter_count  # noqa: E402
from wavefold.settings.training import TrainSettings  # noqa: E402
from wavefold.training import classifier  # noqa: E402

BASELINE = "lenet"


def model_settings(config: dict, model: str) -> TrainSettings:
    merged = {**config["training"]["defaults"], **config["training"]["models"][model]}
    return TrainSettings.from_config(merged)


def parameters(config: dict, model: str) -> int:
    torch.manual_seed(0)
    return parameter_count(classifier.Classifier(model_settings(config, model), len(LABELS)))


def cost(workdir: Path, model: str) -> tuple[float, float]:
    """(mean training minutes per fold, median seconds per epoch) of one model's round-1 jobs."""
    minutes = [float(pd.read_csv(path, sep="\t")["s"].iloc[0]) / 60
               for path in sorted((workdir / f"benchmarks/train/round1/{model}").glob("fold*.tsv"))]  # fmt: skip
    epochs = pd.concat([pd.read_csv(path) for path in (workdir / f"results/train/round1/{model}").glob("fold*/curve.csv")])
    return (sum(minutes) / len(minutes) if minutes else float("nan")), float(epochs["seconds"].median())


def table(workdir: Path, config: dict, models: list[str]) -> pd.DataFrame:
    cv = pd.read_csv(workdir / "results/cv/round1/cv.csv").set_index("model").loc[models]
    folds = [column for column in cv.columns if column.startswith("fold")]
    rows = []
    for model in models:
        minutes, epoch_seconds = cost(workdir, model)
        rows.append({"model": model, "architecture": config["training"]["models"][model]["architecture"],
                     "parameters": parameters(config, model), **cv.loc[model, folds].to_dict(),
                     "mean": cv.loc[model, "mean"], "std": cv.loc[model, "std"],
                     "min/fold": minutes, "s/epoch": epoch_seconds})  # fmt: skip
    result = pd.DataFrame(rows).set_index("model")
    if BASELINE in result.index:
        result[f"acc x {BASELINE}"] = result["mean"] / result.loc[BASELINE, "mean"]
        result[f"time x {BASELINE}"] = result["min/fold"] / result.loc[BASELINE, "min/fold"]
    return result.sort_values("mean", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wavefold-cv-per-model"))
    parser.add_argument("--cores", default="2")
    parser.add_argument("--models", nargs="+", help="default: every model under training.models")
    parser.add_argument("--reuse", action="store_true", help="only read the results already in --workdir")
    parser.add_argument("snakemake_args", nargs="*")
    args = parser.parse_args()

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    models = args.models or list(config["training"]["models"])
    if BASELINE not in models:
        models.insert(0, BASELINE)
    unknown = sorted(set(models) - set(config["training"]["models"]))
    if unknown:
        sys.exit(f"--models: {unknown} are not under training.models in config/config.yaml")

    if not args.reuse:
        args.workdir.mkdir(parents=True, exist_ok=True)
        overlay = args.workdir / "cv-per-model.yaml"
        overlay.write_text(yaml.safe_dump({"training": {"run": models}}))
        command = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"),
                   "--directory", str(args.workdir), "--configfile", str(REPO / "config" / "config.yaml"),
                   str(overlay), "--cores", args.cores, "--rerun-incomplete", *args.snakemake_args,
                   "results/cv/round1/cv.csv"]  # fmt: skip
        started = time.perf_counter()
        with open(args.workdir / "snakemake.out", "a") as out:
            subprocess.run(command, cwd=args.workdir, stdout=out, stderr=subprocess.STDOUT, check=True)
        print(f"snakemake: {(time.perf_counter() - started) / 60:.1f} min on {args.cores} cores (cached jobs not counted)")

    print(f"\nRound-1 CV on the default demo ({len(models)} models; ratios to {BASELINE}, same run):\n")
    print(table(args.workdir, config, models).to_string(float_format="%.3f"))


if __name__ == "__main__":
    main()
