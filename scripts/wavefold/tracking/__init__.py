"""Experiment tracking in MLflow: every training job, blend and tuning trial of every workflow run,
side by side in ``mlflow ui`` (``./wavefold ui``).

Two writers, one store:

- :mod:`.live` — each job logs while it runs (its settings, every epoch as it ends, its final
  scores and files), under one parent run per ``snakemake`` invocation. That is the default
  wherever the jobs reach the store: on the machine that runs the workflow with the SQLite store,
  and on any machine with a tracking server (``tracking.uri: http://...``).
- :mod:`.after` — rule ``track``, at the end: logs what no job logged live (jobs on other machines
  than the workflow's with an SQLite store, which those cannot share; jobs run while tracking was off
  or the store down) from the files they wrote, and the workflow's CV and hidden scores.

:mod:`.invocation` names the invocation and finds its parent run; :mod:`.store` holds the MLflow calls;
:mod:`.summaries` names the numbers after the competition's metric.
"""

from .settings import TrackingSettings
from .store import Store, TrackingError, flatten

__all__ = ["Store", "TrackingError", "TrackingSettings", "flatten"]
