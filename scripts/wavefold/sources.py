"""Where the competition comes from — the demo, Kaggle, or a local path — and its layout once extracted.

All three sources end in the same verified ``.7z`` archives, and one extraction path serves them all.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from . import archives, kaggle_api
from .competitions import Competition
from .errors import ExplainedError

log = logging.getLogger(__name__)


class LayoutError(ExplainedError, RuntimeError):
    """The source or the extracted files are not laid out like the competition; the message says how."""


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def retrieve(source: str, competition: Competition, out_dir: Path, demo_zip: Path | None = None,
             attempts: int = 5, backoff_seconds: float = 10.0) -> list[Path]:  # fmt: skip
    """Put the competition's verified download files into ``out_dir``; returns their paths.

    ``source`` is ``demo`` (``demo_zip`` is the generated download), ``kaggle``, or a path to the
    download zip or to a folder holding it or the competition's files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    names = competition.download_files
    if source == "demo":
        paths = archives.unpack_competition_zip(demo_zip, out_dir, names)
    elif source == "kaggle":
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".download-") as tmp:
            zip_path = kaggle_api.download_competition(competition.slug, Path(tmp), attempts, backoff_seconds)
            paths = archives.unpack_competition_zip(zip_path, out_dir, names)
    else:
        paths = _from_path(Path(source).expanduser(), competition, out_dir)
    for path in paths:  # each was verified where it came from (archives.unpack_competition_zip, _from_path)
        log.info("verified %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return paths


def _from_path(path: Path, competition: Competition, out_dir: Path) -> list[Path]:
    names = competition.download_files
    expected = f"the competition's download zip ({competition.slug}.zip), or a folder holding it or {', '.join(names)}"
    if not path.exists():
        raise LayoutError(f"source: {path} does not exist. Set 'source' to {expected}.")
    if path.is_file():
        if path.suffix != ".zip":
            raise LayoutError(f"source: {path} is not a zip file. Set 'source' to {expected}.")
        return archives.unpack_competition_zip(path, out_dir, names, archives.FIX_USERS)
    members = [path / name for name in names]
    if all(p.is_file() for p in members):
        for p in members:  # checked where they are, so that an error names the user's own file
            archives.check_member(p, archives.FIX_USERS)
            _copy(p, out_dir / p.name)
        return [out_dir / p.name for p in members]
    zips = sorted(p for p in path.glob("*.zip") if p.name not in names)
    if len(zips) == 1:
        return archives.unpack_competition_zip(zips[0], out_dir, names, archives.FIX_USERS)
    found = sorted(p.name for p in path.iterdir())[:20]
    hint = ""
    if (path / competition.test_folder).is_dir():
        hint = (
            " It looks like already extracted audio: point 'source' at the archives, which are checked for integrity."
        )
    raise LayoutError(f"source: {path} holds {found}; expected {expected}.{hint}")


def extract(download_dir: Path, destination: Path, competition: Competition) -> None:
    """Unpack the competition's downloaded files into ``destination`` and check the layout. It is
    unpacked into a staging folder beside it first: a failed or killed extraction leaves no half
    layout where a finished one is expected."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    for leftover in destination.parent.glob(".extract-*"):  # a killed run's staging folder
        log.info("removing %s, left by an interrupted extraction", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".extract-") as tmp:
        staging = Path(tmp) / "extracted"
        staging.mkdir()
        started = time.perf_counter()
        competition.extract(download_dir, staging)
        log.info("extracted %s in %.1f s", ", ".join(competition.download_files), time.perf_counter() - started)
        check_layout(staging, competition)
        reconcile_test_clips(staging, competition)
        test_clips = sum(1 for _ in (staging / competition.test_folder).glob("*.wav"))
        log.info("layout ok: %d test clips", test_clips)
        if destination.exists():
            shutil.rmtree(destination)
        staging.rename(destination)


def check_layout(root: Path, competition: Competition) -> None:
    """Raise :class:`LayoutError` naming what is missing unless ``root`` looks like the extracted competition."""
    problems = competition.check_layout(root)
    if problems:
        found = sorted(str(p.relative_to(root)) for p in root.glob("*/*"))[:20]
        raise LayoutError(
            f"{root} is not laid out like the {competition.title}: missing "
            + "; ".join(problems)
            + f". Found: {found}. Check that 'source' points at that competition's files "
            f"(competition: {competition.slug})."
        )


def reconcile_test_clips(root: Path, competition: Competition) -> None:
    """Raise :class:`LayoutError` unless the test folder holds exactly the clips ``sample_submission.csv``
    lists: found now, not at the submission after every training job."""
    folder = competition.test_folder
    listed = pd.read_csv(root / "sample_submission.csv")[competition.id_column]
    present = {p.name for p in (root / folder).glob("*.wav")}
    missing, unlisted = sorted(set(listed) - present), sorted(present - set(listed))
    repeated = sorted(set(listed[listed.duplicated()]))
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} clips listed in sample_submission.csv are not in {folder} (e.g. {missing[:3]})"
        )
    if unlisted:
        problems.append(
            f"{len(unlisted)} clips in {folder} are not listed in sample_submission.csv (e.g. {unlisted[:3]})"
        )
    if repeated:
        problems.append(f"sample_submission.csv lists {len(repeated)} clips twice (e.g. {repeated[:3]})")
    if problems:
        raise LayoutError(
            "the test clips and sample_submission.csv disagree: " + "; ".join(problems) + ". A submission needs "
            "exactly one row per listed clip; the download is incomplete or mixed with another: download it again."
        )
