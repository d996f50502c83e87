"""Rule final_round: choose the round whose blend is submitted (blend.final_round) and copy its
tables to results/final/, where the submission, the report and 'snakemake submit' read them."""

import shutil

import pandas as pd

from wavefold import blend, competitions, rounds
from wavefold.steps import rule_step

with rule_step(snakemake, "final_round") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    competition = competitions.get(p.competition)
    functions = blend.metric_functions(blend.competition_metric(competition))
    last_shift = pd.read_csv(inp.shift[-1]).iloc[0]
    metric = blend.ranking_metric(p.choose_by, bool(last_shift["shifted"]), competition.metric_name,
                                  competition.multi_label)  # fmt: skip
    truth = blend.truth_table(pd.read_csv(inp.folds), pd.read_csv(inp.silence))
    labels = competition.labels
    scores, chosen = {}, {}
    for round_, oof_path, candidates_path in zip(p.rounds, inp.oof, inp.candidates):
        oof = blend.read_table(oof_path, "id", labels)
        scores[round_] = rounds.round_scores(oof, truth, labels, functions[metric], competition.multi_label)
        chosen[round_] = blend.chosen_candidate(pd.read_csv(candidates_path), competition.metric_name)[0]
    choice = rounds.choose_round(scores, chosen, p.how, p.noise_se, metric)
    k = p.rounds.index(choice.round)
    for name in ("oof", "test", "candidates", "label_mix"):
        shutil.copyfile(inp[name][k], out[name])
    choice.table.to_csv(out.rounds, index=False, float_format="%.5f")
    log.info("the rounds' chosen blends, CV %s per fold (rows: %d scored clips and silence examples):\n%s",
             metric, len(truth), choice.table.to_string(index=False, float_format="%.4f"))  # fmt: skip
    if choice.round != p.rounds[-1]:
        log.warning("submitting round %d, not the last round: %s", choice.round, choice.reason)
    else:
        log.info("submitting %s", choice.reason)
