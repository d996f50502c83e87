"""The wheels a notebook installs offline: ``pip download`` for Kaggle's Python and platform.

Kaggle's image lacks onnxruntime and a code competition's notebook has no internet, so the wheels
travel in the Dataset. They are fetched for the image's Python and platform, not this machine's
(``--platform``/``--python-version``, binary wheels only), with what they depend on that the image
may lack. ``source``: ``pypi``, or a folder of wheels (offline machines; the tests).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..errors import ExplainedError


class WheelsError(ExplainedError, RuntimeError):
    """pip could not fetch the wheels; the message has its last lines and the fix."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"{what}\nFix: {fix}")


def command(requirements, out: Path, python: str, platform: str, source: str) -> list[str]:
    where = [] if source == "pypi" else ["--no-index", "--find-links", str(Path(source).expanduser())]
    return [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--platform", platform,
            "--python-version", python, "--dest", str(out), *where, *requirements]  # fmt: skip


def fetch(requirements, out: Path, python: str, platform: str, source: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command(requirements, out, python, platform, source), capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise WheelsError(f"pip download {' '.join(requirements)} for Python {python} on {platform} failed:\n  {tail}",
                          "check kernel.wheels, kernel.python and kernel.platform; kernel.wheels_from: a folder of "
                          "wheels where there is no internet")  # fmt: skip
    return sorted(out.glob("*.whl"))
