"""Copy what the blend and final_round steps read from a finished demo run into a test fixture.

    python tests/data/export_finished_run.py RUN_DIR OUT_DIR

The fixture is the run's own files, in its layout, for every round and model: the fold models' OOF
tables and metrics (the prior they were trained under), the test tables (the mean of the fold
models), the folds and silence tables, the test clips' names, and the demo's hidden solution.
Probability tables are rounded to 4 decimals and gzipped (pandas reads ``.csv.gz`` as it reads
``.csv``): the hard-shift run of tests/test_final_choice.py is 0.6 MB instead of 6 MB. Model
weights, the audio and the cache are left behind: replaying the blend needs none of them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd


def export(run: Path, out: Path) -> list[Path]:
    written = []

    def copy(source: Path, target: Path, probabilities: bool = False) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if probabilities:
            target = target.with_name(target.name + ".gz")
            pd.read_csv(source).to_csv(target, index=False, float_format="%.4f")
        else:
            shutil.copyfile(source, target)
        written.append(target)

    for oof in sorted(run.glob("results/train/round*/*/fold*/oof.csv")):
        copy(oof, out / oof.relative_to(run), probabilities=True)
        metrics = oof.with_name("metrics.csv")
        copy(metrics, out / metrics.relative_to(run))
    for test in sorted(run.glob("results/predict/round*/*.csv")):  # the fold means, not each fold's table
        copy(test, out / test.relative_to(run), probabilities=True)
    folds = pd.read_csv(run / "results/folds/folds.csv")
    (out / "results/folds").mkdir(parents=True, exist_ok=True)
    folds[["id", "label", "fold", "scored"]].to_csv(out / "results/folds/folds.csv.gz", index=False)
    pd.read_csv(run / "results/folds/silence.csv")[["id", "fold", "label"]].to_csv(
        out / "results/folds/silence.csv.gz", index=False
    )
    (out / "results/index").mkdir(parents=True, exist_ok=True)
    pd.read_csv(run / "results/index/test.csv")[["fname"]].to_csv(out / "results/index/test.csv.gz", index=False)
    solution = next(run.glob("resources/*/solution.csv"))
    pd.read_csv(solution)[["fname", "label", "Usage"]].to_csv(out / "solution.csv.gz", index=False)
    shutil.copyfile(run / "results/submission/local_scores.csv", out / "local_scores.csv")  # the run's own scores
    written += [out / "results/folds/folds.csv.gz", out / "results/folds/silence.csv.gz",
                out / "results/index/test.csv.gz", out / "solution.csv.gz", out / "local_scores.csv"]  # fmt: skip
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    written = export(args.run, args.out)
    print(f"{len(written)} files, {sum(p.stat().st_size for p in written) / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
