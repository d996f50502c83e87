"""The MLflow calls the workflow makes, in one place: batching, retries on a busy SQLite store, and
one clear error when the store cannot be opened.

mlflow is imported in :class:`Store` only: parsing the workflow, and every rule that tracks
nothing, stay free of it (it takes seconds to import).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path

from ..errors import ExplainedError

log = logging.getLogger(__name__)

#: MLflow's per-request limits (log_batch): at most 1000 metrics and 100 params per call.
BATCH_METRICS, BATCH_PARAMS = 1000, 100
PARAM_VALUE_MAX = 6000
#: A busy SQLite store (another job holds its write lock past sqlite's own timeout) is retried this
#: many times, waiting 1, 2, 4, ... seconds.
BUSY_RETRIES = 6
#: An unreachable tracking server costs a job at most a few tries, not MLflow's default minutes of
#: back-off (the user's own MLFLOW_HTTP_REQUEST_* settings win).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


class TrackingError(ExplainedError):
    """The tracking store cannot be opened or written; the message names the URI and the fix."""


def now_ms() -> int:
    """Now, in MLflow's unit (milliseconds since the epoch)."""
    return int(time.time() * 1000)


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: ``{"augment": {"gain_db": 6}}`` -> ``{"augment.gain_db": "6"}``."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return {key: value[:PARAM_VALUE_MAX] for key, value in flat.items()}


def key(name: str) -> str:
    """``name`` as MLflow takes a metric's or param's name: characters other than letters, digits,
    ``_ - . : /`` and spaces become ``_`` (a Freesound label is ``Bathtub_(filling_or_washing)``)."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def is_local(uri: str) -> bool:
    """A store in a file of this machine (SQLite), as opposed to a tracking server."""
    return uri.startswith("sqlite:")


def _busy(error: Exception) -> bool:
    return "database is locked" in str(error) or "database is busy" in str(error)


@contextlib.contextmanager
def _one_at_a_time(lock_path: Path):
    """Held by one process at a time (an flock on ``lock_path``). Opening a new SQLite store creates its
    tables through MLflow's migrations, which two jobs starting at once run side by side and leave the
    database half-migrated ("table _alembic_tmp_experiments already exists" for every later opener)."""
    import fcntl

    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Store:
    """One experiment of one MLflow store."""

    def __init__(self, uri: str, experiment: str):
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        self.uri = uri
        try:
            artifacts, opening = None, contextlib.nullcontext()
            if is_local(uri):  # artifacts beside the database, not in whichever folder the job runs in
                database = Path(uri.removeprefix("sqlite:///"))
                database.parent.mkdir(parents=True, exist_ok=True)
                artifacts = (database.parent / "artifacts").resolve().as_uri()
                opening = _one_at_a_time(database.with_name(database.name + ".opening"))
            with opening:
                self.client = MlflowClient(tracking_uri=uri)
                found = self.call(self.client.get_experiment_by_name, experiment)
                self.experiment_id = (
                    found.experiment_id if found else self.call(self.client.create_experiment, experiment, artifacts)
                )
        except Exception as error:  # mlflow raises many kinds; all mean the store is unusable
            raise TrackingError(
                f"cannot open the MLflow tracking store {uri!r} ({type(error).__name__}: {error}). Set "
                "tracking.uri to a store you can write (e.g. sqlite:///mlruns/mlflow.db or an http:// "
                "tracking server), or turn tracking off with tracking.mlflow: false"
            ) from error

    @staticmethod
    def call(function, *args, **kwargs):
        """``function(*args)``, retried while a local store is locked by another job's write."""
        for attempt in range(BUSY_RETRIES + 1):
            try:
                return function(*args, **kwargs)
            except Exception as error:
                if not _busy(error) or attempt == BUSY_RETRIES:
                    raise
                log.info("the tracking store is busy (%s); trying again in %d s", error, 2**attempt)
                time.sleep(2**attempt)

    def search(self, filter_string: str) -> list:
        return self.call(self.client.search_runs, [self.experiment_id], filter_string=filter_string)

    def start(self, name: str, tags: dict, parent: str | None = None, start_ms: int | None = None) -> str:
        """A new run, RUNNING (MLflow's nesting is the parent tag ``mlflow.parentRunId``); ``start_ms``:
        when what it tracks started (the store may be reached later, from a background thread)."""
        tags = {**tags, "mlflow.runName": name, **({"mlflow.parentRunId": parent} if parent else {})}
        create = self.client.create_run
        return self.call(create, self.experiment_id, start_time=start_ms, run_name=name, tags=tags).info.run_id

    def log(self, run_id: str, metrics: dict | None = None, steps: dict | None = None, params: dict | None = None,
            tags: dict | None = None, timestamp_ms: int | None = None) -> None:  # fmt: skip
        """Metrics (``{name: value}``), stepped series (``{name: [(step, value), ...]}``), params and tags."""
        from mlflow.entities import Metric, Param, RunTag

        now = timestamp_ms if timestamp_ms is not None else now_ms()
        points = [Metric(key(k), float(v), now, 0) for k, v in (metrics or {}).items()]
        points += [Metric(key(k), float(v), now, step) for k, series in (steps or {}).items() for step, v in series]
        for start in range(0, len(points), BATCH_METRICS):
            self.call(self.client.log_batch, run_id, metrics=points[start : start + BATCH_METRICS])
        param_list = [Param(key(k), v) for k, v in (params or {}).items()]
        for start in range(0, len(param_list), BATCH_PARAMS):
            self.call(self.client.log_batch, run_id, params=param_list[start : start + BATCH_PARAMS])
        if tags:
            self.call(self.client.log_batch, run_id, tags=[RunTag(key(k), str(v)) for k, v in tags.items()])

    def artifact(self, run_id: str, path: str | Path, folder: str | None = None) -> None:
        self.call(self.client.log_artifact, run_id, str(path), folder)

    def end(self, run_id: str, status: str = "FINISHED", end_ms: int | None = None) -> None:
        self.call(self.client.set_terminated, run_id, status, end_ms)

    def reopen(self, run_id: str) -> None:
        """A run taken up again (a resumed job): RUNNING until it ends again."""
        self.call(self.client.update_run, run_id, "RUNNING")

    def last_step(self, run_id: str, metric: str) -> int:
        """The last step of ``metric`` logged to the run (0: none)."""
        history = self.call(self.client.get_metric_history, run_id, metric)
        return max((m.step for m in history), default=0)

    def run(self, name: str, tags: dict, params: dict, metrics: dict, steps: dict | None = None,
            parent: str | None = None, timestamp_ms: int = 0) -> str:  # fmt: skip
        """A finished run logged in one go (the after-the-fact writer)."""
        run_id = self.start(name, tags, parent)
        self.log(run_id, metrics, steps, params, timestamp_ms=timestamp_ms)
        self.end(run_id)
        return run_id
