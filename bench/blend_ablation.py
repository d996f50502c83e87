"""Blend settings tried on a finished demo run's round-1 predictions: no training, seconds per row.

    python bench/blend_ablation.py --workdir RUN [--round 1]

For each setting (auto's noise rule, prior correction and its bound, per-model temperatures, matching
the label mix) the
blend is fitted again on the run's own OOF and test tables, exactly as the blend rule does, and its
final test predictions are scored on the demo's hidden solution, with the unknown share they submit
and EM's estimate.
A later round would need the pseudo-labels re-made (and re-training): round 1 is exact.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from wavefold import blend  # noqa: E402
from wavefold.competitions.tensorflow_speech import LABELS  # noqa: E402

SETTINGS = {
    "auto (1 SE), no EM": {},
    # Labels matched to the probabilities' own mix instead of each clip's argmax (blend.match_mix).
    "auto, mix matched": {"match_mix": True},
    "auto, temperature, mix matched": {"temperature": True, "match_mix": True},
    "mean, mix matched": {"method": "mean", "match_mix": True},
    "stacking, mix matched": {"method": "stacking", "match_mix": True},
    "best CV (0 SE), no EM": {"choice_noise_se": 0.0},
    "auto, EM bound 2": {"prior_correction": "em", "em_max_ratio": 2.0},
    "auto, EM bound 3": {"prior_correction": "em", "em_max_ratio": 3.0},
    "auto, EM bound 5": {"prior_correction": "em", "em_max_ratio": 5.0},
    "auto, EM unbounded": {"prior_correction": "em", "em_max_ratio": 1e6},
    "auto, calibrated EM bound 3": {"prior_correction": "em", "em_start": "calibrated"},
    "auto, calibrated EM unbounded": {"prior_correction": "em", "em_start": "calibrated", "em_max_ratio": 1e6},
    "best CV, calibrated EM bound 3": {"choice_noise_se": 0.0, "prior_correction": "em", "em_start": "calibrated"},
    "mean, no EM": {"method": "mean"},
    "stacking, no EM": {"method": "stacking"},
    "stacking, EM bound 3": {"method": "stacking", "prior_correction": "em", "em_max_ratio": 3.0},
    # Per-model temperatures fitted on OOF (the default until 2026-11: blend.temperature).
    "auto, temperature": {"temperature": True},
    "mean, temperature": {"method": "mean", "temperature": True},
    "stacking, temperature": {"method": "stacking", "temperature": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--round", type=int, default=1)
    args = parser.parse_args()
    run, r = args.workdir, args.round

    models = sorted(p.name for p in (run / f"results/train/round{r}").iterdir() if p.is_dir())
    folds = sorted(
        int(p.name.removeprefix("fold")) for p in (run / f"results/train/round{r}/{models[0]}").glob("fold*")
    )
    oof = {m: [run / f"results/train/round{r}/{m}/fold{k}/oof.csv" for k in folds] for m in models}
    test = {m: run / f"results/predict/round{r}/{m}.csv" for m in models}
    trained = {
        m: blend.trained_prior([run / f"results/train/round{r}/{m}/fold{k}/metrics.csv" for k in folds], LABELS) for m in models
    }
    truth = blend.truth_table(
        pd.read_csv(run / "results/folds/folds.csv"), pd.read_csv(run / "results/folds/silence.csv")
    )
    fnames = pd.read_csv(run / "results/index/test.csv")["fname"].tolist()
    solution = pd.read_csv(next(run.glob("resources/*/solution.csv"))).set_index("fname").loc[fnames]
    unknown = LABELS.index("unknown")

    rows = []
    for name, overrides in SETTINGS.items():
        settings = blend.BlendSettings(**overrides)
        result, _, table = blend.blend_tables(oof, test, truth, fnames, settings, LABELS, None, trained)
        predicted = np.array(LABELS)[table[list(LABELS)].to_numpy().argmax(1)]
        rows.append({
            "setting": name, "chosen": result.chosen,
            "cv": result.candidates.set_index("candidate").loc["final", "accuracy"],
            "hidden": float((predicted == solution["label"].to_numpy()).mean()),
            "unknown submitted": float((predicted == "unknown").mean()),
            "unknown EM": float(result.test_prior[unknown]) if result.test_prior is not None else np.nan,
        })  # fmt: skip
    print(f"round {r} of {run}; unknown in the hidden solution: {(solution['label'] == 'unknown').mean():.3f}\n")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
