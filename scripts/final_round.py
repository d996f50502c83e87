"""Rule final_round: choose the round whose blend is submitted (blend.final_round) and copy its
tables to results/final/, where the submission, the report and 'snakemake submit' read them."""

import shutil

import pandas as pd

from wavefold import blend, competitions, rounds
from wavefold.steps import rule_step
from wavefold.tracking import live

with rule_step(snakemake, "final_round") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    competition = competitions.get(p.competition)
    truth = blend.truth_table(pd.read_csv(inp.folds), pd.read_csv(inp.silence))
    oof = {r: blend.read_table(path, "id", competition.labels) for r, path in zip(p.rounds, inp.oof)}
    picks = {r: blend.chosen_candidate(pd.read_csv(path), competition.metric_name)
             for r, path in zip(p.rounds, inp.candidates)}  # fmt: skip  (name, CV) of each round's choice
    chosen = {r: name for r, (name, _) in picks.items()}
    last_shifted = bool(pd.read_csv(inp.shift[-1]).iloc[0]["shifted"])
    choice = rounds.choose_final(oof, chosen, last_shifted, truth, competition, p.how, p.noise_se, p.choose_by)
    k = p.rounds.index(choice.round)
    for name in ("oof", "test", "candidates", "label_mix", "recipe"):
        shutil.copyfile(inp[name][k], out[name])
    choice.table.to_csv(out.rounds, index=False, float_format="%.5f")
    log.info("the rounds' chosen blends, CV %s per fold (rows: %d scored clips and silence examples):\n%s",
             choice.metric, len(truth), choice.table.to_string(index=False, float_format="%.4f"))  # fmt: skip
    if choice.round != p.rounds[-1]:
        log.warning("submitting round %d, not the last round: %s", choice.round, choice.reason)
    else:
        log.info("submitting %s", choice.reason)
    name, cv = picks[choice.round]
    live.log_to_invocation(live.Context.of(snakemake), {f"cv_{competition.metric_name}": cv},
                           {"wavefold.final_round": str(choice.round), "wavefold.chosen": name})  # fmt: skip
