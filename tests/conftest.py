"""Shared fixtures: the workflow every DAG test runs, the tiny speech demo's backbone and finished run
(each made once per session and copied into the tests' own folders), and a runner for the real snakemake.

What is shared, and why it is safe to share:
- ``workflow``: a copy of the repository's workflow (Snakefile, rules, scripts, config, ...). Every DAG
  test runs it, so a test that edits a module (:func:`edited`) edits the copy, never the checkout.
- ``speech_backbone``: the tiny demo (seed 42, 2 folds) generated, downloaded, extracted, indexed,
  cached, folded and augmented by the real snakemake, once. :func:`from_backbone` copies it, with
  Snakemake's metadata and the files' times, into a test's folder, where only what the test's
  settings change runs.
- ``speech_run``: the whole default target on that backbone (:data:`SPEECH_RUN`). Tests read it; a
  test that runs anything more in it works on a copy (:func:`copy_tree`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

# Nothing written inside the checkout, __pycache__ included: this process and every subprocess that
# inherits its environment (./wavefold test sets it from the start; a test giving a subprocess an
# environment of its own must set it there).
sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
REPO = Path(__file__).resolve().parents[1]
COMPETITION = "tensorflow-speech-recognition-challenge"
SEED = 42
#: What the speech backbone is made with: every DAG test of the speech challenge lays its settings
#: over these (other folds or demos would re-run the backbone's steps).
SPEECH_BACKBONE = {"demo": {"size": "tiny"}, "folds": {"n_folds": 2}}
#: The shared finished run: 2 models x 2 folds x 2 rounds, long enough to learn the tiny demo's words.
SPEECH_RUN = {
    **SPEECH_BACKBONE,
    "training": {"run": ["lenet", "matchboxnet"], "tta_shift_ms": [0, 50],
                 "defaults": {"epochs": 8, "batch_size": 32}},
    # Eight epochs on ~200 clips a fold make unsure models: a lower bar, so that round 2 gets pseudo-labels.
    "pseudo_label": {"rounds": 2, "threshold": 0.5, "agreement": False},
    "submit": {"poll_seconds": 0.2, "wait_minutes": 0.5},
}  # fmt: skip

#: DAG tests run untracked unless their config turns tracking on (the shared run and the tracking
#: tests do): each tracked job imports MLflow, ~2 s of CPU, which only the tracking tests need.
#: Tracking settings re-run nothing, so a copy of a tracked run runs untracked alike.
UNTRACKED = {"tracking": {"mlflow": False}}
TRACKED = {"tracking": {"mlflow": True}}

_WORKFLOW: Path | None = None  # set by the session fixture ``workflow``


def speech():
    """The speech challenge's competition object (imported late: the package path is set up by then)."""
    from wavefold import competitions

    return competitions.get(COMPETITION)


def copy_of_the_workflow(target: Path) -> Path:
    """A copy of the workflow (Snakefile, rules, scripts, config, ...): what the DAG tests run and edit."""
    ignore = shutil.ignore_patterns("__pycache__", ".venv", ".git", ".snakemake", "results", "resources", "logs")
    target.mkdir(parents=True)
    for part in ("Snakefile", "rules", "scripts", "config", "profiles", "report", "envs"):
        source = REPO / part
        (shutil.copytree(source, target / part, ignore=ignore) if source.is_dir() else shutil.copy2(source, target / part))
    return target


@pytest.fixture(scope="session", autouse=True)
def workflow(tmp_path_factory) -> Path:
    """The copy of the workflow this session's DAG tests run (the checkout is never run nor edited)."""
    global _WORKFLOW
    _WORKFLOW = copy_of_the_workflow(tmp_path_factory.mktemp("workflow") / "wavefold")
    return _WORKFLOW


@contextmanager
def edited(relative: str, old: str | None = None, new: str | None = None):
    """The workflow copy's file ``relative`` edited for the block — ``old`` replaced by ``new``, or a
    comment appended — and restored after it, content and times (Snakemake compares both)."""
    path = _WORKFLOW / relative
    original, before = path.read_bytes(), path.stat()
    text = original.decode()
    if old is not None:
        assert old in text, f"{relative} has no {old!r} to edit"
    path.write_text(text.replace(old, new) if old is not None else text + "\n# an edit\n")
    try:
        yield path
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def snakemake_command(workdir: Path, *args: str, config: dict | None = None, env: dict | None = None,
                      repo: Path | None = None) -> tuple[list[str], dict]:  # fmt: skip
    """The real snakemake's command line and environment for the session's workflow copy (or ``repo``)
    in ``workdir``.

    ``config`` is written to a file laid over config/config.yaml (``--config`` would pass nested
    numbers as strings).
    """
    repo = repo or _WORKFLOW
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "test-config.yaml"
    overlay.write_text(yaml.safe_dump({**UNTRACKED, **(config or {})}))
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
    return command, environment


def snakemake(workdir: Path, *args: str, config: dict | None = None, env: dict | None = None,
              timeout: int = 900, repo: Path | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run the real snakemake (:func:`snakemake_command`); its output is captured."""
    command, environment = snakemake_command(workdir, *args, config=config, env=env, repo=repo)
    return subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=timeout)


def snakemake_started(workdir: Path, *args: str, config: dict | None = None, output: Path) -> subprocess.Popen:
    """The real snakemake (:func:`snakemake_command`) started in the background, its output written to
    ``output`` (a pipe nobody reads while the test polls would fill and stop it)."""
    command, environment = snakemake_command(workdir, *args, config=config)
    with open(output, "w") as sink:
        return subprocess.Popen(command, cwd=workdir, env=environment, stdout=sink, stderr=subprocess.STDOUT)


def finished_run(workdir: Path, config: dict, *targets: str, timeout: int = 1500) -> Path:
    """``workdir`` after ``targets`` (default: the whole default target) ran there; fails with the output's tail."""
    result = snakemake(workdir, *targets, config=config, timeout=timeout)
    assert result.returncode == 0, output_of(result)[-5000:]
    return workdir


def output_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def copy_tree(source: Path, target: Path) -> Path:
    """A copy of a work folder with its files' times and Snakemake's metadata: nothing in it re-runs."""
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("locks", "incomplete", "log"))
    return target


def from_backbone(backbone: Path, workdir: Path) -> Path:
    """``workdir`` holding a copy of the finished backbone: only what comes after the folds runs there."""
    return copy_tree(backbone, workdir)


@pytest.fixture(scope="session")
def speech_backbone(tmp_path_factory) -> Path:
    """The tiny speech demo through the real snakemake up to the folds and the offline variants."""
    targets = ("results/folds/summary.csv", "results/cache/augmented.npy")
    return finished_run(tmp_path_factory.mktemp("speech-backbone"), SPEECH_BACKBONE, *targets)


@pytest.fixture(scope="session")
def speech_run(speech_backbone, tmp_path_factory) -> Path:
    """The whole default target of :data:`SPEECH_RUN` on the backbone, tracked: read it, copy it to change it."""
    return finished_run(from_backbone(speech_backbone, tmp_path_factory.mktemp("speech-run") / "run"),
                        {**SPEECH_RUN, **TRACKED})  # fmt: skip


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    """A folder with the tiny demo's download zip and hidden solution (seed 42, as the DAG tests use),
    made in-process: for the tests of archives, sources and the download that run no workflow."""
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


# ----------------------------------------------------------------------------- the checkout stays as it was
_UNTOUCHED = {".venv", ".git"}  # the installed environment and git's own files


def _checkout_state() -> dict[str, tuple[int, int]]:
    state = {}
    for root, folders, files in os.walk(REPO):
        folders[:] = [f for f in folders if not (Path(root) == REPO and f in _UNTOUCHED)]
        for name in files:
            path = Path(root) / name
            info = path.lstat()
            state[str(path.relative_to(REPO))] = (info.st_size, info.st_mtime_ns)
    return state


def pytest_sessionstart(session):
    session.config._wavefold_checkout = _checkout_state()
    from slurm_cluster import restore_after_a_killed_run

    for what in restore_after_a_killed_run():  # else every snakemake call of the session waits ~9 s
        session.config.get_terminal_writer().line(f"wavefold tests: {what}", yellow=True)


def pytest_sessionfinish(session, exitstatus):
    """No test writes inside the checkout: every file there as the session found it, and no new one
    (a test that edits a module edits the session's workflow copy; outputs go to temporary folders)."""
    before, after = session.config._wavefold_checkout, _checkout_state()
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if changed:
        session.config.get_terminal_writer().line(
            "the tests wrote inside the checkout: " + ", ".join(changed[:20]), red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def dummy_wheel(folder: Path, name: str = "wavefold_test_wheel", version: str = "1.0") -> str:
    """A pure-Python wheel (any platform) the test makes: what rule fetch_wheels fetches offline here."""
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "VALUE = 1\n", f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}  # fmt: skip
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for path, text in files.items()] + [f"{info}/RECORD,,"]  # fmt: skip
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in {**files, f"{info}/RECORD": "\n".join(record) + "\n"}.items():
            wheel.writestr(path, text)
    return f"{name.replace('_', '-')}=={version}"


def json_of_yaml(path: Path) -> dict:
    """A YAML (or JSON) file's contents: a test's config overlay, a package's metadata."""
    return yaml.safe_load(path.read_text())
