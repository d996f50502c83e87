"""The default DAG on a shifted demo: CV next to the hidden score for every stage, and the label mix.

    python bench/shift.py [--shift hard] [--workdir DIR] [--cores N] [--reuse]
                          [--variant NAME "KEY=VALUE ..."]... [-- extra snakemake args]

Runs the real snakemake with the repository's defaults (config/config.yaml) on the demo with
``demo.shift`` set (default: hard), then prints, from the DAG's own results/submission/ tables:

1. every round's models, blends and final predictions: CV, the hidden solution's score, their gap,
   and the ratio to the run's best single model (by the hidden score);
2. the submission's label mix next to the truth's (and EM's estimate, when prior correction is on);
3. the final submissions of all runs side by side, with the final round's shift check (labels unused).

Each ``--variant`` is an ablation row: a copy of the baseline run (its .snakemake metadata too, so
Snakemake re-runs only what the variant's settings change) run again with extra ``--config``
values, e.g. ``--variant em "blend={prior_correction: em}"``. The last table compares the final
submissions of all runs. This table is how recipe choices are made (docs/figures.md).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path, shift: str, cores: str, config: list[str], extra: list[str]) -> float:
    command = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(REPO / "config" / "config.yaml"),
               "--cores", cores, "--config", f"demo={{shift: {shift}}}", *config, *extra]  # fmt: skip
    started = time.perf_counter()
    with open(workdir / "snakemake.out", "a") as out:
        subprocess.run(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - started


def config_values(text: str) -> list[str]:
    """``KEY=VALUE`` items of a variant, split on the spaces outside braces (values are YAML)."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"{": 1, "}": -1, "[": 1, "]": -1}.get(char, 0)
        if char == " " and depth == 0:
            items, current = items + [current] if current else items, ""
        else:
            current += char
    return items + [current] if current else items


def stage_table(workdir: Path) -> pd.DataFrame:
    table = pd.read_csv(workdir / "results/submission/local_scores.csv")
    singles = table[~table["predictions"].str.startswith(("blend", "final"))]
    table["x best single"] = table["hidden"] / singles["hidden"].max()
    return table.drop(columns=["public", "private"])


def summary_row(name: str, workdir: Path, minutes: float | None) -> dict:
    table = stage_table(workdir)
    finals = table[table["predictions"].str.startswith("final")]
    submitted = finals[finals["predictions"].str.endswith("(submitted)")]  # blend.final_round's choice
    final = (submitted if len(submitted) else finals[finals["round"] == finals["round"].max()]).iloc[0]
    final_round = int(final["round"])
    singles = table[~table["predictions"].str.startswith(("blend", "final"))]
    round1_blends = table[(table["round"] == 1) & table["predictions"].str.startswith("blend")]
    mix = pd.read_csv(workdir / "results/submission/label_mix.csv").set_index("label")
    return {
        "run": name,
        "final": f"round {final_round}: " + final["predictions"].removeprefix("final: ").removesuffix(" (submitted)"),
        "final cv": final["cv"],
        "final hidden": final["hidden"],
        "best single hidden": singles["hidden"].max(),
        "best round-1 blend hidden": round1_blends["hidden"].max(),
        "unknown: submitted / truth": f"{mix.loc['unknown', 'submission']:.3f} / {mix.loc['unknown', 'truth']:.3f}",
        "shift check": shift_check(workdir, final_round),
        "minutes": minutes,
    }


def shift_check(workdir: Path, round_: int) -> str:
    """The final round's label-free shift check (results/blend/round<r>/shift.csv): its ratio and verdict."""
    path = workdir / f"results/blend/round{round_}/shift.csv"
    if not path.exists():  # a run made before the check existed
        return "-"
    check = pd.read_csv(path).iloc[0]
    return f"{check['ratio']:.2f}x {'shifted' if check['shifted'] else 'no shift'}"


def show(name: str, workdir: Path) -> None:
    print(f"\n=== {name}: CV beside the hidden score (x best single: ratio of hidden scores) ===\n")
    print(stage_table(workdir).to_string(index=False, float_format="%.4f"))
    print(f"\n=== {name}: label mix, submission against the hidden solution ===\n")
    print(pd.read_csv(workdir / "results/submission/label_mix.csv").to_string(index=False, float_format="%.3f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shift", default="hard", choices=["none", "mild", "hard"])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wavefold-shift"))
    parser.add_argument("--cores", default="2")
    parser.add_argument("--reuse", action="store_true", help="print the tables of the runs already in --workdir")
    parser.add_argument("--keep-baseline", action="store_true", help="run the variants on the baseline already there")
    parser.add_argument("--variant", nargs=2, action="append", default=[], metavar=("NAME", "CONFIG"),
                        help="an ablation: a name and extra --config values (quoted, space-separated)")  # fmt: skip
    parser.add_argument("snakemake_args", nargs="*")
    args = parser.parse_args()

    baseline = args.workdir / "baseline"
    runs = [("baseline", baseline, [])] + [(name, args.workdir / name, config_values(c)) for name, c in args.variant]
    rows = []
    for name, workdir, config in runs:
        minutes = None
        if not args.reuse and not (args.keep_baseline and workdir == baseline):
            if workdir != baseline:
                shutil.rmtree(workdir, ignore_errors=True)
                shutil.copytree(baseline, workdir, symlinks=True)  # keeps mtimes: nothing stale re-runs
            else:
                shutil.rmtree(workdir, ignore_errors=True)
                workdir.mkdir(parents=True)
            minutes = run_snakemake(workdir, args.shift, args.cores, config, args.snakemake_args) / 60
        show(name, workdir)
        rows.append(summary_row(name, workdir, minutes))
    print(f"\n=== final submissions, demo.shift = {args.shift} ===\n")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
