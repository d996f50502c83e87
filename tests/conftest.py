"""Shared fixtures: the tiny demo competition (made once per session) and a runner for the real snakemake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPETITION = "tensorflow-speech-recognition-challenge"
SEED = 42


def speech():
    """The speech challenge's competition object (imported late: the package path is set up by then)."""
    from wavefold import competitions

    return competitions.get(COMPETITION)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A folder with the tiny demo's download zip and hidden solution (seed 42, as the DAG tests use)."""
    from wavefold import competitions

    out = tmp_path_factory.mktemp("tiny-demo")
    competitions.generate_demo(COMPETITION, out, "tiny", SEED, workers=2)
    return out


@pytest.fixture(scope="session")
def tiny_extracted(tiny_demo, tmp_path_factory) -> Path:
    """The tiny demo, unpacked: train/, test/, sample_submission.csv."""
    from wavefold import archives, competitions, sources

    download = tmp_path_factory.mktemp("tiny-download")
    speech = competitions.get(COMPETITION)
    archives.unpack_competition_zip(tiny_demo / f"{COMPETITION}.zip", download, speech.download_files)
    root = tmp_path_factory.mktemp("tiny-extracted") / "extracted"
    sources.extract(download, root, speech)
    return root


def snakemake(workdir: Path, *args: str, config: dict | None = None, env: dict | None = None,
              timeout: int = 600, repo: Path = REPO) -> subprocess.CompletedProcess:  # fmt: skip
    """Run the real snakemake on the workflow of ``repo`` (this repository) in ``workdir``; output is captured.

    ``config`` is written to a file laid over config/config.yaml (``--config`` would pass nested
    numbers as strings).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "test-config.yaml"
    overlay.write_text(yaml.safe_dump(config or {}))
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        "-s", str(repo / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(repo / "config" / "config.yaml"), str(overlay),
        "--cores", "2",
        *args,
    ]  # fmt: skip
    environment = dict(os.environ if env is None else env)
    environment["PATH"] = f"{Path(sys.executable).parent}:{environment.get('PATH', '')}"
    return subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=timeout)


def finished_run(workdir: Path, config: dict, timeout: int = 1500) -> Path:
    """``workdir`` after the whole default target ran there with ``config``; fails with the output's tail."""
    result = snakemake(workdir, config=config, timeout=timeout)
    assert result.returncode == 0, output_of(result)[-5000:]
    return workdir


def share_backbone(source: Path, workdir: Path) -> Path:
    """``workdir`` linked to ``source``'s finished audio cache, folds and index: only training runs there."""
    (workdir / "results").mkdir(parents=True)
    for part in ("cache", "folds", "index"):
        os.symlink(source / "results" / part, workdir / "results" / part)
    return workdir


def output_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def copy_of_the_workflow(target: Path) -> Path:
    """A copy of the workflow (Snakefile, rules, scripts, config, ...) to edit in a test, never the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", ".venv", ".git", ".snakemake", "results", "resources", "logs")
    target.mkdir(parents=True)
    for part in ("Snakefile", "rules", "scripts", "config", "profiles", "report", "envs"):
        source = REPO / part
        (shutil.copytree(source, target / part, ignore=ignore) if source.is_dir() else shutil.copy2(source, target / part))
    return target
