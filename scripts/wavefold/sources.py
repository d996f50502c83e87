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
from .errors import ExplainedError
from .labels import NOISE_FOLDER, TEST_CLIP_NAME, WORDS

log = logging.getLogger(__name__)


class LayoutError(ExplainedError, RuntimeError):
    """The source or the extracted files are not laid out like the competition; the message says how."""


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def retrieve(source: str, competition: str, out_dir: Path, demo_zip: Path | None = None,
             attempts: int = 5, backoff_seconds: float = 10.0) -> list[Path]:  # fmt: skip
    """Put the competition's verified .7z archives into ``out_dir``; returns their paths.

    ``source`` is ``demo`` (``demo_zip`` is the generated download), ``kaggle``, or a path to the
    download zip or to a folder holding it or the three .7z archives.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if source == "demo":
        paths = archives.unpack_competition_zip(demo_zip, out_dir)
    elif source == "kaggle":
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".download-") as tmp:
            zip_path = kaggle_api.download_competition(competition, Path(tmp), attempts, backoff_seconds)
            paths = archives.unpack_competition_zip(zip_path, out_dir)
    else:
        paths = _from_path(Path(source).expanduser(), competition, out_dir)
    for path in paths:  # each was verified where it came from (archives.unpack_competition_zip, _from_path)
        log.info("verified %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return paths


def _from_path(path: Path, competition: str, out_dir: Path) -> list[Path]:
    expected = (
        f"the competition's download zip ({competition}.zip), or a folder holding it or "
        f"{', '.join(archives.COMPETITION_ARCHIVES)}"
    )
    if not path.exists():
        raise LayoutError(f"source: {path} does not exist. Set 'source' to {expected}.")
    if path.is_file():
        if path.suffix != ".zip":
            raise LayoutError(f"source: {path} is not a zip file. Set 'source' to {expected}.")
        return archives.unpack_competition_zip(path, out_dir, archives.FIX_USERS)
    sevens = [path / name for name in archives.COMPETITION_ARCHIVES]
    if all(p.is_file() for p in sevens):
        for p in sevens:  # checked where they are, so that an error names the user's own file
            archives.check_7z(p, archives.FIX_USERS)
            _copy(p, out_dir / p.name)
        return [out_dir / p.name for p in sevens]
    zips = sorted(path.glob("*.zip"))
    if len(zips) == 1:
        return archives.unpack_competition_zip(zips[0], out_dir, archives.FIX_USERS)
    found = sorted(p.name for p in path.iterdir())[:20]
    hint = ""
    if (path / "train" / "audio").is_dir():
        hint = " It looks like already extracted audio: point 'source' at the archives, which are checked for integrity."
    raise LayoutError(f"source: {path} holds {found}; expected {expected}.{hint}")


def extract(archive_dir: Path, destination: Path) -> None:
    """Unpack train.7z, test.7z and sample_submission.7z into ``destination`` and check the layout."""
    destination.mkdir(parents=True, exist_ok=True)
    for leftover in destination.glob(".extract-*"):  # a killed run's staging folder
        log.info("removing %s, left by an interrupted extraction", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=destination, prefix=".extract-") as tmp:
        staging = Path(tmp)
        for name in archives.COMPETITION_ARCHIVES:
            started = time.perf_counter()
            archives.extract_7z(archive_dir / name, staging)
            log.info("extracted %s in %.1f s", archive_dir / name, time.perf_counter() - started)
        check_layout(staging)
        reconcile_test_clips(staging)
        train_clips = sum(1 for _ in (staging / "train" / "audio").glob("*/*.wav"))
        test_clips = sum(1 for _ in (staging / "test" / "audio").glob("*.wav"))
        log.info("layout ok: %d train .wav files (noise included), %d test clips", train_clips, test_clips)
        for item in ("train", "test", "sample_submission.csv"):
            target = destination / item
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            (staging / item).rename(target)


def check_layout(root: Path) -> None:
    """Raise :class:`LayoutError` naming what is missing unless ``root`` looks like the extracted competition."""
    problems = []
    audio = root / "train" / "audio"
    if not audio.is_dir():
        problems.append("train/audio/ (one folder of .wav clips per word)")
    else:
        missing_words = [w for w in WORDS if not (audio / w).is_dir()]
        if missing_words:
            problems.append(f"train/audio/<word>/ for {missing_words}")
        if not any((audio / NOISE_FOLDER).glob("*.wav")):
            problems.append(f"train/audio/{NOISE_FOLDER}/*.wav (background noise)")
    test_audio = root / "test" / "audio"
    if not test_audio.is_dir() or not any(TEST_CLIP_NAME.match(p.name) for p in test_audio.iterdir()):
        problems.append("test/audio/clip_<9 hex digits>.wav")
    sample = root / "sample_submission.csv"
    if not sample.is_file():
        problems.append("sample_submission.csv")
    elif list(pd.read_csv(sample, nrows=1).columns) != ["fname", "label"]:
        problems.append("sample_submission.csv with the columns fname,label")
    if problems:
        found = sorted(str(p.relative_to(root)) for p in root.glob("*/*"))[:20]
        raise LayoutError(
            f"{root} is not laid out like the TensorFlow Speech Recognition Challenge: missing "
            + "; ".join(problems)
            + f". Found: {found}. Check that 'source' points at that competition's files."
        )


def reconcile_test_clips(root: Path) -> None:
    """Raise :class:`LayoutError` unless ``test/audio`` holds exactly the clips ``sample_submission.csv``
    lists: found now, not at the submission after every training job."""
    listed = pd.read_csv(root / "sample_submission.csv")["fname"]
    present = {p.name for p in (root / "test" / "audio").glob("*.wav")}
    missing, unlisted = sorted(set(listed) - present), sorted(present - set(listed))
    repeated = sorted(set(listed[listed.duplicated()]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} clips listed in sample_submission.csv are not in test/audio (e.g. {missing[:3]})")
    if unlisted:
        problems.append(f"{len(unlisted)} clips in test/audio are not listed in sample_submission.csv (e.g. {unlisted[:3]})")
    if repeated:
        problems.append(f"sample_submission.csv lists {len(repeated)} clips twice (e.g. {repeated[:3]})")
    if problems:
        raise LayoutError(
            "the test clips and sample_submission.csv disagree: " + "; ".join(problems) + ". A submission needs "
            "exactly one row per listed clip; the download is incomplete or mixed with another: download it again."
        )
