"""Rule cv_table: each model's CV per fold in the competition's metric, mean and std, and per-class
recall, for the report. Scored from the OOF tables on the rows the blend scores (the clips whose
labels are trusted, and the silence examples), so that this table and the blend's agree."""

from pathlib import Path

import numpy as np
import pandas as pd

from wavefold import blend, competitions
from wavefold.steps import rule_step

with rule_step(snakemake, "cv_table") as log:
    inp, p = snakemake.input, snakemake.params
    competition = competitions.get(p.competition)
    labels = list(competition.labels)
    truth = blend.truth_table(pd.read_csv(inp.folds), pd.read_csv(inp.silence))
    rows, per_class = [], []
    for path in inp.oof:
        model, fold = Path(path).parts[-3], int(Path(path).parts[-2].removeprefix("fold"))
        oof = blend.read_table(path, "id", labels).set_index("id")
        scored = oof.index[oof.index.isin(truth.index)]
        probabilities = oof.loc[scored, labels].to_numpy()
        y = competition.truth(truth.loc[scored, "label"])
        rows.append({"model": model, "fold": fold, "score": competition.metric_rows(probabilities, y).mean()})
        if competition.multi_label:  # per label: the share of the clips holding it that rank it first
            hits = pd.Series({label: (probabilities[y[:, c] > 0].argmax(1) == c).mean() if (y[:, c] > 0).any()
                              else np.nan for c, label in enumerate(labels)})  # fmt: skip
        else:
            hits = pd.Series(probabilities.argmax(1) == y).groupby(truth.loc[scored, "label"].to_numpy()).mean()
        per_class.append(hits.reindex(labels).rename((model, fold)))
    folds = pd.DataFrame(rows)
    table = folds.pivot(index="model", columns="fold", values="score").add_prefix("fold")
    table["mean"] = folds.groupby("model")["score"].mean()
    table["std"] = folds.groupby("model")["score"].std(ddof=0)
    table.sort_values("mean", ascending=False).to_csv(snakemake.output.cv, float_format="%.4f")
    classes = pd.DataFrame(per_class)
    classes.index = pd.MultiIndex.from_tuples(classes.index, names=["model", "fold"])
    classes.groupby("model").mean().to_csv(snakemake.output.per_class, float_format="%.4f")
    log.info("CV %s (mean ± std over folds), on %d scored rows:\n%s", competition.metric_name, len(truth),
             table.to_string(float_format="%.4f"))  # fmt: skip
