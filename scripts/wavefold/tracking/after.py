"""After the fact (rule track, the last of a run): log what no job logged live, and the workflow's
summary on the invocation's parent run.

Jobs log live (:mod:`.live`) wherever they can reach the store. What they could not log is logged
here from the files they wrote (curve.csv, metrics.csv, oof.csv, candidates.csv): jobs that ran on
other machines than the workflow's with an SQLite store (which several machines cannot share: run a
tracking server for live curves there), jobs that ran while tracking was off or the store was down.
A run holding a job's outputs is tagged with their digest (:data:`.live.OUTPUTS_TAG`), so nothing
is logged twice, whichever writer logged it first; the curves of runs logged here carry the time
of their files, not of their epochs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..blend import chosen_candidate
from . import summaries
from .invocation import OUTPUTS_TAG, Context, outputs_digest
from .store import Store, flatten

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingJob:
    round: int
    model: str
    fold: int
    curve: Path
    metrics: Path
    oof: Path
    settings: dict

    @property
    def outputs(self) -> tuple[Path, Path]:
        """The files whose digest names the job's run (the live writer tags the same)."""
        return self.curve, self.metrics


@dataclass(frozen=True)
class Blend:
    round: int
    candidates: Path
    shift: Path


def training_tags(round_: int, model: str, fold: int, architecture: str) -> dict:
    return {"wavefold.kind": "training", "wavefold.round": str(round_), "wavefold.model": model,
            "wavefold.fold": str(fold), "wavefold.architecture": architecture}  # fmt: skip


def blend_metrics(blend: Blend, metric: str) -> tuple[dict, dict]:
    """A round's blend run: its metrics and tags."""
    values, chosen = summaries.blend_summary(pd.read_csv(blend.candidates), metric)
    values.update(summaries.shift_summary(pd.read_csv(blend.shift)))
    return values, {"wavefold.kind": "blend", "wavefold.round": str(blend.round), "wavefold.chosen": chosen}


def _logged(store: Store, digest: str) -> str | None:
    found = store.search(f"tags.`{OUTPUTS_TAG}` = '{digest}' and attributes.status = 'FINISHED'")
    return found[0].info.run_id if found else None


def log_missing(store: Store, context: Context, competition, jobs: list[TrainingJob], truth: pd.DataFrame,
                blends: list[Blend], final_round: int, local_scores: Path | None = None) -> pd.DataFrame:  # fmt: skip
    """Log the jobs and blends no run holds yet, and the workflow's CV (and, on the demo, hidden
    scores) on the invocation's parent run. Returns every run: id, name, kind, and when it was logged."""
    metric = competition.metric_name
    parent = context.parent(store) or store.start("wavefold", {**context.tags(), "wavefold.kind": "workflow"})
    rows = []
    for job in jobs:
        name = f"round{job.round}/{job.model}/fold{job.fold}"
        digest = outputs_digest(name, job.outputs)
        run_id, when = _logged(store, digest), "live or before"
        if run_id is None:
            curve, when = pd.read_csv(job.curve), "now"
            score = summaries.fold_score(competition, pd.read_csv(job.oof), truth)
            tags = {**context.tags(), **training_tags(job.round, job.model, job.fold, str(job.settings.get("architecture"))),
                    OUTPUTS_TAG: digest}  # fmt: skip
            final = summaries.job_summary(competition, pd.read_csv(job.metrics), curve, score)
            stamp = int(os.path.getmtime(job.curve) * 1000)
            run_id = store.run(name, tags, flatten(job.settings), final, summaries.curve_steps(curve), parent, stamp)
        rows.append({"run_id": run_id, "name": name, "kind": "training", "logged": when})
    for blend in blends:
        name = f"round{blend.round}/blend"
        digest = outputs_digest(name, [blend.candidates])
        run_id, when = _logged(store, digest), "live or before"
        if run_id is None:
            values, tags = blend_metrics(blend, metric)
            tags = {**context.tags(), **tags, OUTPUTS_TAG: digest}
            stamp = int(os.path.getmtime(blend.candidates) * 1000)
            run_id, when = store.run(name, tags, {}, values, None, parent, stamp), "now"
        rows.append({"run_id": run_id, "name": name, "kind": "blend", "logged": when})
    # What the steps logged live (final_round, score_local: unrounded) stays; the rest from the files.
    logged = store.call(store.client.get_run, parent).data.metrics
    metrics, tags = workflow_summary(blends, metric, final_round, local_scores)
    store.log(parent, metrics={k: v for k, v in metrics.items() if k not in logged}, tags=tags)
    rows.insert(0, {"run_id": parent, "name": "workflow", "kind": "workflow", "logged": "now"})
    table = pd.DataFrame(rows)
    late = table.loc[table["logged"] == "now", "name"].drop(0).tolist()
    log.info("%d runs found logged (live, or by an earlier run), in %s (experiment id %s)",
             (table["logged"] != "now").sum(), store.uri, store.experiment_id)  # fmt: skip
    if late:
        log.info("logged now, from their files (no run held them: they ran on another machine than the "
                 "workflow's with an SQLite store, or while tracking was off or the store down): %s", ", ".join(late))  # fmt: skip
    return table


def workflow_summary(blends: list[Blend], metric: str, final_round: int,
                     local_scores: Path | None) -> tuple[dict, dict]:  # fmt: skip
    """The submitted round's CV (``cv_<metric>``) and, on the demo, the hidden scores; the round and
    the candidate submitted, as tags."""
    submitted = next(b for b in blends if b.round == final_round)
    chosen, cv = chosen_candidate(pd.read_csv(submitted.candidates), metric)
    metrics = {f"cv_{metric}": cv}
    if local_scores:
        metrics.update(summaries.hidden_scores(pd.read_csv(local_scores), metric, final_round))
    return metrics, {"wavefold.final_round": str(final_round), "wavefold.chosen": chosen}
