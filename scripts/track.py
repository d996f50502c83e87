"""Rule track: log the finished run's training jobs, CV and blends to the MLflow store."""

from pathlib import Path

import pandas as pd

from wavefold import tracking
from wavefold.steps import rule_step

with rule_step(snakemake, "track") as log:
    inp, p = snakemake.input, snakemake.params
    jobs = [
        tracking.TrainingJob(job["round"], job["model"], job["fold"], Path(curve), Path(metrics), job["settings"])
        for job, curve, metrics in zip(p.jobs, inp.curves, inp.metrics)
    ]
    candidates = {int(Path(path).parent.name.removeprefix("round")): Path(path) for path in inp.candidates}
    store = tracking.Store(p.uri, p.experiment)
    local_scores = Path(inp.local_scores) if "local_scores" in inp.keys() else None
    tags = {"wavefold.dataset": p.dataset, "wavefold.commit": p.commit, "wavefold.workdir": str(Path.cwd())}
    rounds = pd.read_csv(inp.rounds)
    final_round = int(rounds.loc[rounds["chosen"], "round"].iloc[0])
    runs = tracking.log_workflow(
        store, f"{p.dataset} @ {p.commit[:12]}", jobs, candidates, p.config, tags, local_scores, final_round
    )
    runs.to_csv(snakemake.output.runs, index=False)
    log.info("see them with: mlflow ui --backend-store-uri %s", p.uri)
