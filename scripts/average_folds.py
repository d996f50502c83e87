"""Rule average_folds: a model's test probabilities as the mean of its fold models."""

import pandas as pd

from wavefold.steps import rule_step

with rule_step(snakemake, "average_folds") as log:
    tables = [pd.read_csv(path) for path in snakemake.input.predictions]
    for table in tables[1:]:
        if not table["fname"].equals(tables[0]["fname"]):
            raise ValueError("fold predictions list different test clips; re-run predict_test")
    mean = tables[0].copy()
    columns = mean.columns[1:]
    mean[columns] = sum(t[columns] for t in tables) / len(tables)
    mean.to_csv(snakemake.output[0], index=False, float_format="%.6g")
    log.info("averaged %d fold models over %d clips", len(tables), len(mean))
