"""Rule track: log to MLflow what no job logged live, and the workflow's CV and hidden scores."""

from pathlib import Path

import pandas as pd

from wavefold import blend, competitions
from wavefold.steps import rule_step
from wavefold.tracking import Store, live
from wavefold.tracking.after import Blend, TrainingJob, log_missing

with rule_step(snakemake, "track") as log:
    inp, p = snakemake.input, snakemake.params
    jobs = [TrainingJob(job["round"], job["model"], job["fold"], Path(curve), Path(metrics), Path(oof), job["settings"])
            for job, curve, metrics, oof in zip(p.jobs, inp.curves, inp.metrics, inp.oofs)]  # fmt: skip
    blends = [Blend(r, Path(c), Path(s)) for r, c, s in zip(p.rounds, inp.candidates, inp.shifts)]
    context = live.Context.of(snakemake)
    rounds = pd.read_csv(inp.rounds)
    final_round = int(rounds.loc[rounds["chosen"], "round"].iloc[0])
    truth = blend.truth_table(pd.read_csv(inp.folds), pd.read_csv(inp.silence))
    local_scores = Path(inp.local_scores) if "local_scores" in inp.keys() else None
    store = Store(context.settings.uri, context.settings.experiment)
    runs = log_missing(store, context, competitions.get(p.competition), jobs, truth, blends, final_round, local_scores)
    runs.to_csv(snakemake.output.runs, index=False)
    log.info("watch them with: ./wavefold ui (mlflow ui --backend-store-uri %s)", context.settings.uri)
