"""The tracking settings (config section ``tracking``): read by the Snakemake layer and every job,
so free of mlflow."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import from_section


@dataclass(frozen=True)
class TrackingSettings:
    #: Log every job to MLflow (live where the store allows it, else after the run: README, "Tracking").
    mlflow: bool = True
    #: The store: an SQLite file of this machine, or a tracking server (http://host:5000).
    uri: str = "sqlite:///mlruns/mlflow.db"
    experiment: str = "wavefold"
    #: Each training job's files (model, curve, metrics) as the run's artifacts.
    artifacts: bool = True

    @classmethod
    def from_config(cls, section: dict) -> "TrackingSettings":
        return from_section(cls, dict(section), "tracking")
