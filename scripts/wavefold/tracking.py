"""Experiment tracking: a finished workflow run's training jobs, CV and blends in an MLflow store.

One MLflow run per workflow run (its settings, final CV and, on the demo, hidden scores), with one
child run per training job (model, fold, round: its settings, per-epoch curve, final accuracy and
per-class recall) and one per round's blend (every candidate's CV). ``mlflow ui`` then shows every
model, fold and round of every workflow run side by side.

Why after the fact, from the files the jobs wrote (curve.csv, metrics.csv), and not from inside each
training job: one writer. Training jobs run in parallel, on SLURM on other nodes; an SQLite store
(MLflow's local default since the file store was retired) on a shared file system does not take
concurrent writers reliably, and a training job then needs neither mlflow nor the store's path.
The cost is that curves appear when the round's training is done, not live.

A workflow run whose inputs were already logged (same files, same settings) is not logged twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import ExplainedError

log = logging.getLogger(__name__)

#: Tag holding a digest of everything a workflow run logged: the same inputs are logged once.
KEY_TAG = "wavefold.key"
#: MLflow's per-request limits (log_batch): at most 1000 metrics and 100 params per call.
_BATCH_METRICS, _BATCH_PARAMS = 1000, 100
_PARAM_VALUE_MAX = 6000


class TrackingError(ExplainedError):
    """The tracking store cannot be opened or written; the message names the URI and the fix."""


@dataclass(frozen=True)
class TrainingJob:
    round: int
    model: str
    fold: int
    curve: Path
    metrics: Path
    settings: dict


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: ``{"augment": {"gain_db": 6}}`` -> ``{"augment.gain_db": "6"}``."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return {key: value[:_PARAM_VALUE_MAX] for key, value in flat.items()}


def digest(paths: list[Path], settings: dict) -> str:
    """What a workflow run logs, in one string: the bytes of its input files and its settings."""
    hasher = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(paths, key=str):
        hasher.update(str(path).encode())
        hasher.update(Path(path).read_bytes())
    return hasher.hexdigest()


def curve_metrics(curve: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """Every numeric column of a learning curve as (epoch, value) steps; empty cells are skipped."""
    steps = {}
    for column in curve.columns.drop("epoch"):
        values = pd.to_numeric(curve[column], errors="coerce")
        points = [(int(e), float(v)) for e, v in zip(curve["epoch"], values) if not math.isnan(v)]
        if points:
            steps[column] = points
    return steps


def job_summary(job: TrainingJob, curve: pd.DataFrame) -> dict[str, float]:
    """A training job's final numbers: its fold accuracy (the kept epoch's OOF) and per-class recall
    (a multi-label model's, recall at probability 0.5: its metrics' ``all`` row is not an accuracy)."""
    metrics = pd.read_csv(job.metrics).set_index("label")
    multi_label = "val_lwlrap" in curve.columns
    summary = {"oof_recall_at_0.5" if multi_label else "oof_accuracy": float(metrics.loc["all", "recall"])}
    for label, recall in metrics["recall"].drop("all").items():
        if not math.isnan(recall):
            summary[f"recall.{label}"] = float(recall)
    summary["epochs_run"] = float(len(curve))
    return summary


def blend_summary(candidates: pd.DataFrame) -> tuple[dict[str, float], str]:
    """A round's blend candidates as metrics (CV accuracy and log-loss of each), and the chosen one."""
    metrics = {}
    for row in candidates.itertuples():
        metrics[f"cv_accuracy.{row.candidate}"] = float(row.accuracy)
        metrics[f"cv_log_loss.{row.candidate}"] = float(row.log_loss)
    chosen = candidates.loc[candidates["chosen"], "candidate"]
    return metrics, (str(chosen.iloc[0]) if len(chosen) else "")


def hidden_scores(local_scores: pd.DataFrame) -> dict[str, float]:
    """The demo's hidden-solution score of every model, blend and final prediction, by round."""
    scores = {}
    for row in local_scores.itertuples():
        # "final: stacking" -> final (the chosen name varies between runs), "blend (mean)" -> blend_mean
        name = "final" if row.predictions.startswith("final") else row.predictions
        name = name.replace("blend (", "blend_").rstrip(")")
        scores[f"hidden.round{row.round}.{name}"] = float(row.hidden)
    return scores


class Store:
    """The few MLflow client calls the workflow makes, with batching and one clear error."""

    def __init__(self, uri: str, experiment: str):
        # mlflow is imported here only: parsing the workflow and every other rule stay free of it.
        from mlflow.tracking import MlflowClient

        self.uri = uri
        try:
            if uri.startswith("sqlite:///"):
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        except Exception as error:  # mlflow raises many kinds; all mean the store is unusable
            raise TrackingError(
                f"cannot open the MLflow tracking store {uri!r} ({type(error).__name__}: {error}). Set "
                "tracking.uri to a store you can write (e.g. sqlite:///mlruns/mlflow.db or an http:// "
                "tracking server), or turn tracking off with tracking.mlflow: false"
            ) from error

    def logged(self, key: str) -> list[dict]:
        """Runs already logged under this key, as {run_id, name}."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'")
        return [{"run_id": r.info.run_id, "name": r.info.run_name} for r in runs]

    def run(self, name: str, tags: dict, params: dict, metrics: dict, steps: dict | None = None,
            parent: str | None = None, timestamp_ms: int = 0) -> str:  # fmt: skip
        from mlflow.entities import Metric, Param

        tags = {**tags, "mlflow.runName": name, **({"mlflow.parentRunId": parent} if parent else {})}
        run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
        points = [Metric(k, v, timestamp_ms, 0) for k, v in metrics.items()]
        points += [Metric(k, v, timestamp_ms, step) for k, series in (steps or {}).items() for step, v in series]
        param_list = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(points), _BATCH_METRICS):
            self.client.log_batch(run_id, metrics=points[start : start + _BATCH_METRICS])
        for start in range(0, len(param_list), _BATCH_PARAMS):
            self.client.log_batch(run_id, params=param_list[start : start + _BATCH_PARAMS])
        self.client.set_terminated(run_id)
        return run_id


def log_workflow(store: Store, name: str, jobs: list[TrainingJob], candidates: dict[int, Path],
                 config: dict, tags: dict, local_scores: Path | None = None,
                 final_round: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Log one workflow run (its training jobs and blends as child runs) unless the same inputs
    were logged before; returns every run's id with what it holds. ``final_round``: the round
    submitted (blend.final_round; the last by default), whose CV and hidden score the run carries."""
    inputs = [p for job in jobs for p in (job.curve, job.metrics)] + list(candidates.values())
    inputs += [local_scores] if local_scores else []
    final = final_round if final_round is not None else max(candidates)
    key = digest(inputs, {"config": config, "tags": tags, "jobs": [job.settings for job in jobs], "final_round": final})
    previous = store.logged(key)
    if previous:
        log.info("these results were logged before (%d runs under key %s): nothing new to log", len(previous), key[:12])
        return pd.DataFrame(previous).assign(kind="logged before")
    tags = {**tags, KEY_TAG: key}
    now = int(max(os.path.getmtime(p) for p in inputs) * 1000)
    summary, chosen = blend_summary(pd.read_csv(candidates[final]))
    parent_metrics = {"cv_accuracy": summary[f"cv_accuracy.{chosen}"]} if chosen else {}
    if local_scores:
        scores = pd.read_csv(local_scores)
        parent_metrics.update(hidden_scores(scores))
        finals = scores[(scores["round"] == final) & scores["predictions"].str.startswith("final")]
        if len(finals):
            parent_metrics["hidden_accuracy"] = float(finals["hidden"].iloc[0])
    parent_tags = {**tags, "wavefold.chosen": chosen, "wavefold.final_round": str(final)}
    parent = store.run(name, parent_tags, flatten(config), parent_metrics, timestamp_ms=now)
    rows = [{"run_id": parent, "name": name, "kind": "workflow"}]
    for job in jobs:
        run_name = f"round{job.round}/{job.model}/fold{job.fold}"
        job_tags = {**tags, "wavefold.round": str(job.round), "wavefold.model": job.model,
                    "wavefold.fold": str(job.fold), "wavefold.architecture": str(job.settings.get("architecture"))}  # fmt: skip
        curve = pd.read_csv(job.curve)
        run_id = store.run(run_name, job_tags, flatten(job.settings), job_summary(job, curve), curve_metrics(curve),
                           parent, now)  # fmt: skip
        rows.append({"run_id": run_id, "name": run_name, "kind": "training"})
    for round_, path in sorted(candidates.items()):
        metrics, round_chosen = blend_summary(pd.read_csv(path))
        shift = Path(path).with_name("shift.csv")  # written by the same blend job
        if shift.exists():
            check = pd.read_csv(shift).iloc[0]
            metrics.update({f"shift.{k}": float(check[k]) for k in ("disagreement_oof", "disagreement_test", "ratio")
                            if not math.isnan(check[k])})  # fmt: skip
        run_name = f"round{round_}/blend"
        blend_tags = {**tags, "wavefold.round": str(round_), "wavefold.chosen": round_chosen}
        run_id = store.run(run_name, blend_tags, flatten(config.get("blend", {})), metrics, None, parent, now)
        rows.append({"run_id": run_id, "name": run_name, "kind": "blend"})
    log.info("logged %d runs to %s (experiment id %s)", len(rows), store.uri, store.experiment_id)
    return pd.DataFrame(rows)
