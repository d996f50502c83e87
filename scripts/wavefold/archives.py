"""Archive formats of Kaggle downloads: the "Download all" ``.zip`` and what it holds (``.7z`` archives
read by py7zr, inner ``.zip`` archives, plain files). Which files a competition's download holds is
the competition's (:attr:`wavefold.competitions.Competition.download_files`)."""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import zipfile
from pathlib import Path

from .errors import ExplainedError

log = logging.getLogger(__name__)

#: A fixed timestamp for files packed by the demo, so that the same seed gives the same archives.
FIXED_MTIME = 1_500_000_000

#: LZMA2 (py7zr's FILTER_LZMA2) at a light preset: the same .7z format as the competition's, packed
#: several times faster than py7zr's default (audio barely compresses further at higher presets).
FAST_LZMA2 = [{"id": lzma.FILTER_LZMA2, "preset": 1}]


class ArchiveError(ExplainedError, RuntimeError):
    """An archive that is missing, truncated or corrupt; the message names the file and the fix."""


def pack_7z(source_dir: Path, archive: Path, members: list[str]) -> None:
    """Pack ``members`` (paths relative to ``source_dir``) into a .7z archive, as the competition does."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    for member in members:
        os.utime(source_dir / member, (FIXED_MTIME, FIXED_MTIME))
        for root, dirs, files in os.walk(source_dir / member):
            for name in files + dirs:
                os.utime(os.path.join(root, name), (FIXED_MTIME, FIXED_MTIME))
    import py7zr  # here, not at the top: the workflow's parse imports this module (0.1 s of each snakemake call)

    with py7zr.SevenZipFile(partial, "w", filters=FAST_LZMA2) as seven:
        for member in sorted(members):
            seven.writeall(source_dir / member, arcname=member)
    partial.replace(archive)


#: What to do about a bad archive, by who made it: the workflow's own copy can be made again; the
#: user's own download must never be deleted on our advice, only fetched again.
FIX_OURS = "delete it and run the workflow again"
FIX_USERS = "it is your own file ('source'), which the workflow never changes: download it again from Kaggle"

def _broken_7z() -> tuple[type[BaseException], ...]:
    """The errors py7zr lets through for a truncated or corrupt archive."""
    import py7zr

    return (py7zr.exceptions.Bad7zFile, py7zr.exceptions.ArchiveError, py7zr.exceptions.CrcError, lzma.LZMAError,
            EOFError, OSError, KeyError, ValueError)  # fmt: skip


def check_7z(archive: Path, fix: str = FIX_OURS) -> None:
    """Raise :class:`ArchiveError` unless ``archive`` is a complete, uncorrupted .7z file; ``fix``
    says what to do (:data:`FIX_OURS` or :data:`FIX_USERS`)."""
    import py7zr

    try:
        with py7zr.SevenZipFile(archive, "r") as seven:
            failed = seven.testzip()
    except _broken_7z() as error:
        raise ArchiveError(
            f"{archive} is not a complete, readable 7z archive ({type(error).__name__}: {error}). It was probably "
            f"cut off or damaged while it was copied or downloaded: {fix}."
        ) from error
    if failed:
        raise ArchiveError(f"{archive}: the member {failed} fails its CRC check (damaged data): {fix}.")


def extract_7z(archive: Path, destination: Path) -> None:
    """Unpack a .7z archive into ``destination``."""
    check_7z(archive)
    destination.mkdir(parents=True, exist_ok=True)
    import py7zr

    try:
        with py7zr.SevenZipFile(archive, "r") as seven:
            seven.extractall(path=destination)
    except _broken_7z() as error:
        raise ArchiveError(f"{archive} could not be unpacked ({type(error).__name__}: {error}): {FIX_OURS}.") from error


def check_zip(archive: Path, fix: str = FIX_OURS) -> None:
    """Raise :class:`ArchiveError` unless ``archive`` is a complete zip file whose members pass their CRC."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            failed = zipped.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, lzma.LZMAError, ValueError) as error:
        raise ArchiveError(
            f"{archive} is not a complete zip file ({error}); a partial download is never used: {fix}."
        ) from error
    if failed:
        raise ArchiveError(f"{archive}: the member {failed} fails its CRC check (damaged data): {fix}.")


def check_member(path: Path, fix: str = FIX_OURS) -> None:
    """Check a downloaded file by its kind: a .7z or .zip archive must be complete; others are taken as they are."""
    if path.suffix == ".7z":
        check_7z(path, fix)
    elif path.suffix == ".zip":
        check_zip(path, fix)


def unpack_competition_zip(archive: Path, destination: Path, names: tuple[str, ...], fix: str = FIX_OURS) -> list[Path]:
    """Take the competition's files ``names`` out of a Kaggle download zip; returns their paths. Inner
    archives are checked here, while the message can still name the zip they came from."""
    check_zip(archive, fix)
    with zipfile.ZipFile(archive) as zipped:
        by_name = {Path(name).name: name for name in zipped.namelist() if not name.endswith("/")}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise ArchiveError(
                f"{archive} holds {sorted(by_name)} but not {missing}: expected the competition's download "
                f"({', '.join(names)}). Is it the right competition's zip?"
            )
        destination.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in names:
            target = destination / name
            with zipped.open(by_name[name]) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, length=1 << 20)
            try:
                check_member(target)
            except ArchiveError as error:
                target.unlink()
                raise ArchiveError(f"{name} inside {archive} is damaged ({error.__cause__}): {fix}.") from error
            paths.append(target)
    return paths


def pack_competition_zip(archives: list[Path], zip_path: Path) -> None:
    """Bundle the .7z archives into one zip, the way Kaggle serves a competition's 'Download all'."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    partial = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as zipped:
        for path in archives:
            info = zipfile.ZipInfo(path.name, date_time=(2017, 11, 15, 0, 0, 0))
            # ZIP64 for a member past the zip format's 2-GiB size field (a real-size competition's test
            # archive); only then, so that the demo's small zips stay byte for byte what they were.
            large = path.stat().st_size >= zipfile.ZIP64_LIMIT
            with open(path, "rb") as source, zipped.open(info, "w", force_zip64=large) as sink:
                shutil.copyfileobj(source, sink, length=1 << 20)
    partial.replace(zip_path)
