"""Rule pseudo_label: per fold, confident and agreed test predictions of the models that never saw that fold."""

import pandas as pd

from wavefold import competitions, pseudo
from wavefold.folds import one_row_per_label
from wavefold.settings import from_section
from wavefold.steps import rule_step

with rule_step(snakemake, "pseudo_label") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    settings = from_section(pseudo.PseudoSettings, p.settings, "pseudo_label")
    competition = competitions.get(p.competition)
    folds, silence = pd.read_csv(inp.folds), pd.read_csv(inp.silence)
    test_index = pd.read_csv(inp.test_index)
    summaries = []
    for k, fold in enumerate(p.folds):
        # The caps follow the labelled clips that fold's models train on.
        # (A multi-label clip counts for each of its labels.)
        labelled = one_row_per_label(folds[folds["fold"] != fold], competition.multi_label)["label"].value_counts()
        if competition.silence_label is not None:
            labelled[competition.silence_label] = int((silence["fold"] != fold).sum())
        models = {name: pd.read_csv(inp[f"models_{name}"][k]) for name in p.models}
        taken, summary = pseudo.select(pd.read_csv(inp.blends[k]), models, test_index, labelled, settings,
                                       competition.labels, competition.catch_all_label)  # fmt: skip
        taken.to_csv(out.folds[k], index=False, float_format="%.6g")
        summaries.append(summary.assign(fold=fold))
        log.info("fold %d (labelled by round models that never saw it): %d test clips", fold, len(taken))
    summary = pd.concat(summaries, ignore_index=True)
    summary.to_csv(out.summary, index=False)
    log.info("per fold and class (predicted, confident, agreed by all models, cap, taken):\n%s",
             summary.to_string(index=False))  # fmt: skip
