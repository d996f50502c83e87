"""Provenance: which code, which packages and which settings made a result."""

from __future__ import annotations

import hashlib
import json
import platform
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


def system_description(demo_manifest: dict | None) -> str:
    """Python, the platform and, for a generated demo, the espeak-ng version that spoke it (its voices
    follow from the seed for that version only)."""
    lines = [f"python {platform.python_version()}", f"platform {platform.platform()}"]
    if demo_manifest is None:
        lines.append("demo: none (the competition's own data)")
    else:
        lines.append(f"demo {demo_manifest.get('competition')} {demo_manifest.get('size')} seed {demo_manifest.get('seed')}"
                     f", espeak-ng {demo_manifest.get('espeak_ng', 'not used')}")  # fmt: skip
    return "\n".join(lines) + "\n"
