"""Provenance: which code, which packages and which settings made a result."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path


def git_commit(folder: Path | str = ".") -> str:
    """The checked-out commit, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def config_hash(config: dict) -> str:
    """A short, stable hash of the resolved configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pip_freeze() -> str:
    result = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else f"# pip freeze failed: {result.stderr.strip()}\n"
