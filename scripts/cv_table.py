"""Rule cv_table: accuracy per model and fold, mean and std, and per-class accuracy, for the report."""

from pathlib import Path

import pandas as pd

from wavefold.steps import rule_step

with rule_step(snakemake, "cv_table") as log:
    rows, per_class = [], []
    for path in snakemake.input.metrics:
        model, fold = Path(path).parts[-3], int(Path(path).parts[-2].removeprefix("fold"))
        metrics = pd.read_csv(path).set_index("label")
        rows.append({"model": model, "fold": fold, "accuracy": metrics.loc["all", "recall"]})
        per_class.append(metrics["recall"].drop("all").rename((model, fold)))
    folds = pd.DataFrame(rows)
    table = folds.pivot(index="model", columns="fold", values="accuracy").add_prefix("fold")
    table["mean"] = folds.groupby("model")["accuracy"].mean()
    table["std"] = folds.groupby("model")["accuracy"].std(ddof=0)
    table.sort_values("mean", ascending=False).to_csv(snakemake.output.cv, float_format="%.4f")
    classes = pd.DataFrame(per_class)
    classes.index = pd.MultiIndex.from_tuples(classes.index, names=["model", "fold"])
    classes.groupby("model").mean().to_csv(snakemake.output.per_class, float_format="%.4f")
    log.info("CV accuracy (mean ± std over folds):\n%s", table.to_string(float_format="%.4f"))
