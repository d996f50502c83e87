"""Rule report_figures: the report's figures and tables from the CV tables and blends."""

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from wavefold import blend, competitions, report
from wavefold.steps import rule_step

with rule_step(snakemake, "report_figures") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    competition = competitions.get(p.competition)
    labels = competition.labels
    truth = blend.truth_table(pd.read_csv(inp.folds), pd.read_csv(inp.silence))["label"]
    oof, test = pd.read_csv(inp.final_oof), pd.read_csv(inp.final_test)
    if competition.multi_label:  # a clip counts once per true label: its row repeated, named id#label
        truth, oof = report.one_row_per_true_label(truth, oof)
    rounds = pd.read_csv(inp.final_round)
    final_round = int(rounds.loc[rounds["chosen"], "round"].iloc[0])
    matrix = report.confusion(oof, truth, labels)
    report.plot_confusion(matrix, f"Final blend (round {final_round}), out-of-fold", out.confusion)
    matrix.to_csv(out.confusion_table, index_label="true")  # columns: the predicted labels
    pd.DataFrame({"accuracy": report.per_class_accuracy(matrix), "clips": matrix.sum(1)}).to_csv(
        out.per_class, index_label="label", float_format="%.4f"
    )
    report.confidently_wrong(oof, truth, labels).to_csv(out.wrong, index=False, float_format="%.4f")
    mix = report.label_mix(oof, truth, test, labels)
    mix.to_csv(out.mix, index_label="label", float_format="%.4f")
    report.plot_label_mix(mix, out.mix_plot)
    cv = {r: pd.read_csv(path, index_col=0) for r, path in zip(p.rounds, inp.cv)}
    candidates = {r: pd.read_csv(path) for r, path in zip(p.rounds, inp.candidates)}
    report.plot_cv(cv, candidates, out.cv_plot, competition.metric_name)
    pseudo = [pd.read_csv(path).assign(round=r) for r, path in zip(p.rounds, inp.pseudo)]
    (pd.concat(pseudo) if pseudo else pd.DataFrame(columns=["label", "taken", "round"])).to_csv(out.pseudo, index=False)
    if "local_score" in inp.keys():
        log.info("local score of the demo submission: %s", Path(inp.local_score).read_text())
    plt.close("all")
    log.info("per-class accuracy of the final blend%s:\n%s",
             " (multi-label: the share of the clips holding a label that rank it first)" if competition.multi_label
             else "", report.per_class_accuracy(matrix).round(4).to_string())  # fmt: skip
