"""One workflow invocation as the tracking sees it: its name and machine, set in the environment when
the workflow is parsed and inherited by its jobs; whether a job logs live where it runs; and the
invocation's parent run, made by whichever job asks first (under a file lock in ``.snakemake/``)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .settings import TrackingSettings
from .store import Store, flatten, is_local, now_ms

#: Set when the workflow is parsed by the snakemake process the user started; its jobs inherit them.
ENV_INVOCATION, ENV_HOST, ENV_STARTED, ENV_COMMIT, ENV_DATASET = (
    "WAVEFOLD_INVOCATION", "WAVEFOLD_INVOCATION_HOST", "WAVEFOLD_INVOCATION_STARTED", "WAVEFOLD_COMMIT",
    "WAVEFOLD_DATASET")  # fmt: skip
#: Tag of a run holding a job's finished outputs (their digest): the track rule does not log them again.
OUTPUTS_TAG = "wavefold.outputs"
INVOCATION_TAG = "wavefold.invocation"


def mark_invocation(environ: dict, commit: str, dataset: str) -> str:
    """Name this invocation in ``environ`` (kept when already named: a SLURM job parses the workflow
    again with its invocation's environment)."""
    environ.setdefault(ENV_INVOCATION, f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}")
    environ.setdefault(ENV_HOST, socket.gethostname())
    environ.setdefault(ENV_STARTED, str(now_ms()))
    environ[ENV_COMMIT], environ[ENV_DATASET] = commit, dataset
    return environ[ENV_INVOCATION]


def not_live_because(settings: TrackingSettings, environ=os.environ) -> str | None:
    """Why this process does not log live (None: it does)."""
    if not settings.mlflow:
        return "tracking.mlflow is false"
    started_on, here = environ.get(ENV_HOST), socket.gethostname()
    if is_local(settings.uri) and started_on and started_on != here:
        return (
            f"this job runs on {here}, the workflow was started on {started_on}, and the store {settings.uri} "
            "is an SQLite file, which jobs on several machines cannot share; the track rule logs this job "
            "after the run. For live curves from cluster nodes run a tracking server (mlflow server) and set "
            "tracking.uri: http://<its host>:5000 (README, 'Tracking')"
        )
    return None


def outputs_digest(name: str, paths) -> str:
    """One digest of a job's run name and the bytes of its outputs: the tag that says they are logged."""
    digest = hashlib.sha256(name.encode())
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class Context:
    """What a job's runs are tagged with and where they go."""

    settings: TrackingSettings
    config: dict
    workdir: Path = field(default_factory=Path.cwd)
    environ: dict = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def of(cls, snakemake) -> "Context":
        """A rule script's context. The settings come from the config, not the rule's params: turning
        tracking on or off, or moving the store, re-runs no job."""
        return cls(TrackingSettings.from_config(snakemake.config.get("tracking", {})), snakemake.config)

    @property
    def invocation(self) -> str | None:
        return self.environ.get(ENV_INVOCATION)

    def tags(self) -> dict:
        return {
            "wavefold.commit": self.environ.get(ENV_COMMIT, ""),
            "wavefold.dataset": self.environ.get(ENV_DATASET, ""),
            "wavefold.config": config_digest(self.config),
            "wavefold.workdir": str(self.workdir),
            **({INVOCATION_TAG: self.invocation} if self.invocation else {}),
        }

    def _files(self) -> tuple[Path, Path]:
        folder = self.workdir / ".snakemake" / "wavefold-tracking"
        return folder / f"{self.invocation}.lock", folder / f"{self.invocation}.run"

    def parent(self, store: Store) -> str | None:
        """The invocation's parent run, made by whichever job asks first."""
        if not self.invocation:
            return None
        lock_path, run_path = self._files()
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if run_path.exists():
                return run_path.read_text().strip()
            tags = self.tags()
            name = f"{tags['wavefold.dataset'] or 'wavefold'} @ {tags['wavefold.commit'][:12]} · {self.invocation}"
            started = self.environ.get(ENV_STARTED)  # the invocation's start, before any job's
            run_id = store.start(name, {**tags, "wavefold.kind": "workflow"}, start_ms=int(started) if started else None)
            store.log(run_id, params=flatten(self.config))
            run_path.write_text(run_id)
            return run_id

    def parent_made(self) -> str | None:
        """The invocation's parent run id, if a job made one (read without opening the store)."""
        if not self.invocation:
            return None
        run_path = self._files()[1]
        return run_path.read_text().strip() if run_path.exists() else None

    def forget(self) -> None:
        """Remove the invocation's files once it has ended: no job of it will ask again."""
        for path in self._files():
            path.unlink(missing_ok=True)
