"""The default demo end to end on this machine: generate -> scored submission, timed, and the local
score of the best single model vs the blend vs the blend + pseudo-labels.

    python bench/end_to_end.py [--workdir DIR] [--cores N] [--reuse] [-- extra snakemake args]

Runs the real snakemake with the repository's defaults (config/config.yaml) in a fresh work folder
(or, with --reuse, scores the results already in --workdir), then prints two tables: the wall time
per stage against the 15-minute target, and the local scores (public/private split of the demo's
hidden solution) with the ratio to the best single model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from wavefold import competitions, submission  # noqa: E402
from wavefold.competitions.tensorflow_speech import LABELS  # noqa: E402

SPEECH = competitions.get("tensorflow-speech-recognition-challenge")

TARGET_MINUTES = 15


def stage_times(workdir: Path) -> pd.DataFrame:
    """Wall time per rule from the benchmark files, summed over its jobs (2 cores: jobs may overlap)."""
    rows = []
    for path in sorted((workdir / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(workdir / "benchmarks").parts[0].removesuffix(".tsv")
        rows.append({"rule": rule, "seconds": float(pd.read_csv(path, sep="\t")["s"].iloc[0])})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", "seconds"])
    table = pd.DataFrame(rows).groupby("rule")["seconds"].agg(["count", "sum"]).rename(columns={"count": "jobs", "sum": "seconds"})
    return table.sort_values("seconds", ascending=False).reset_index()


def local_scores(workdir: Path) -> pd.DataFrame:
    solution = pd.read_csv(next(workdir.glob("resources/demo-*/solution.csv")))
    rows = []

    def add(name, probabilities_path):
        made = submission.make_submission(pd.read_csv(probabilities_path), SPEECH)
        scores = submission.score(made, solution, SPEECH)
        rows.append({"predictions": name, "public": scores["public"], "private": scores["private"], "all": scores["all"]})

    rounds = sorted(int(p.name.removeprefix("round")) for p in (workdir / "results/blend").glob("round*"))
    for model_file in sorted((workdir / f"results/predict/round{rounds[0]}").glob("*.csv")):
        add(f"round {rounds[0]} model {model_file.stem}", model_file)
    for round_ in rounds:
        chosen = pd.read_csv(workdir / f"results/blend/round{round_}/candidates.csv").query("chosen")["candidate"].item()
        add(f"round {round_} blend ({chosen})" + (" + pseudo-labels" if round_ > 1 else ""),
            workdir / f"results/blend/round{round_}/test.csv")  # fmt: skip
    table = pd.DataFrame(rows)
    singles = table[table["predictions"].str.contains(" model ")]
    best = singles["all"].max()
    table["x best single"] = table["all"] / best
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wavefold-end-to-end"))
    parser.add_argument("--cores", default="2")
    parser.add_argument("--reuse", action="store_true", help="score the results already in --workdir")
    parser.add_argument("snakemake_args", nargs="*")
    args = parser.parse_args()

    wall = None
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)
        args.workdir.mkdir(parents=True)
        command = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"),
                   "--directory", str(args.workdir), "--configfile", str(REPO / "config" / "config.yaml"),
                   "--cores", args.cores, *args.snakemake_args]  # fmt: skip
        started = time.perf_counter()
        with open(args.workdir / "snakemake.out", "w") as out:
            subprocess.run(command, cwd=args.workdir, stdout=out, stderr=subprocess.STDOUT, check=True)
        wall = time.perf_counter() - started

    stages = stage_times(args.workdir)
    print("\nWall time per rule (sum over its jobs; from benchmarks/):\n")
    print(stages.to_string(index=False, float_format="%.1f"))
    if wall is not None:
        print(f"\nend to end (generate -> scored submission): {wall / 60:.1f} min on {args.cores} cores = "
              f"{wall / 60 / TARGET_MINUTES:.2f} x the {TARGET_MINUTES}-min target")  # fmt: skip
    print("\nLocal score on the demo's hidden solution (accuracy; ratio to the best single model):\n")
    print(local_scores(args.workdir).to_string(index=False, float_format="%.4f"))
    written = args.workdir / "results/submission/local_scores.csv"
    if written.is_file():
        print("\nCV beside the hidden score, per round (the DAG's own results/submission/local_scores.csv):\n")
        print(pd.read_csv(written).to_string(index=False, float_format="%.4f"))
    score = args.workdir / "results/submission/local_score.json"
    if score.is_file():
        print(f"\nsubmission: {json.loads(score.read_text())}")
    labels = pd.read_csv(args.workdir / "results/submission/submission.csv")["label"].value_counts(normalize=True)
    print("\nsubmitted label mix:", labels.reindex(LABELS, fill_value=0).round(3).to_dict())


if __name__ == "__main__":
    main()
