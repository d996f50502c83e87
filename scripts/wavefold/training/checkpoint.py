"""A training job's checkpoint, resumed only by an interrupted run of the very same job.

The checkpoint is written after every epoch so that a killed job (a SLURM time limit, a crash)
goes on where it stopped. Two rules keep it from ever standing in for a real re-run:

- it is removed as soon as the job's outputs are written, so a job that re-runs after it
  finished (because its settings, code or data changed) always trains from scratch;
- it records the job's identity — its settings, the rows it trains and validates on, its seed,
  and the content of the code and data files it reads — and a checkpoint of another identity is
  deleted, not resumed (a job killed, then its code edited, starts over).

Files up to :data:`CONTENT_LIMIT` are identified by their content (code, tables, the noise cache);
the audio caches (gigabytes on the real competition, read again by every job) by size and
modification time: the workflow rewrites them whole, and a rewritten file has a new time.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CONTENT_LIMIT = 256 * 1024 * 1024


def file_identity(path: str | Path) -> str:
    path = Path(path)
    stat = path.stat()
    if stat.st_size <= CONTENT_LIMIT:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    return f"size {stat.st_size} mtime {stat.st_mtime_ns}"


def job_identity(*parts: str, files: list[str | Path] = ()) -> str:
    """One digest of the ``parts`` (settings, row fingerprint, seed) and the ``files`` the job reads."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(f"{part}\n".encode())
    for path in sorted(str(p) for p in files):
        digest.update(f"{path} {file_identity(path)}\n".encode())
    return digest.hexdigest()


class Checkpoint:
    def __init__(self, path: Path, identity: str):
        self.path, self.identity = Path(path), identity
        self.partial = self.path.with_suffix(".partial")

    def load(self, device: torch.device) -> dict | None:
        """The saved state of an interrupted run of this job, or None (any other checkpoint is removed)."""
        self.partial.unlink(missing_ok=True)  # a save cut off by a kill
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location=device, weights_only=False)
        if state.get("identity") == self.identity:
            log.info("resuming from %s after epoch %d", self.path, state["epoch"])
            return state
        log.info(
            "removing %s: it was written by another version of this job (its settings, code or data "
            "changed since), so it is not resumed",
            self.path,
        )
        self.clear()
        return None

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({**state, "identity": self.identity}, self.partial)
        self.partial.replace(self.path)

    def clear(self) -> None:
        """Remove the checkpoint (and its folder when empty): the job is complete, or it changed."""
        self.path.unlink(missing_ok=True)
        self.partial.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass
