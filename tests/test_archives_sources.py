import shutil
import zipfile

import pytest

from conftest import COMPETITION, speech
from wavefold import archives, sources

ARCHIVES = ("train.7z", "test.7z", "sample_submission.7z")


def test_demo_zip_holds_the_competition_archives(tiny_demo):
    assert speech().download_files == ARCHIVES
    with zipfile.ZipFile(tiny_demo / f"{COMPETITION}.zip") as zipped:
        assert set(ARCHIVES) <= set(zipped.namelist())


def test_truncated_zip_and_7z_are_refused(tiny_demo, tmp_path):
    data = (tiny_demo / f"{COMPETITION}.zip").read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(archives.ArchiveError, match="not a complete zip"):
        archives.unpack_competition_zip(cut, tmp_path / "out", ARCHIVES)
    paths = archives.unpack_competition_zip(tiny_demo / f"{COMPETITION}.zip", tmp_path / "ok", ARCHIVES)
    seven = paths[0].read_bytes()
    (tmp_path / "train.7z").write_bytes(seven[: len(seven) - 5000])
    with pytest.raises(archives.ArchiveError, match="train.7z"):
        archives.check_7z(tmp_path / "train.7z")


def test_local_sources(tiny_demo, tmp_path):
    zip_path = tiny_demo / f"{COMPETITION}.zip"
    got = sources.retrieve(str(zip_path), speech(), tmp_path / "a")
    assert [p.name for p in got] == list(ARCHIVES)
    folder = tmp_path / "sevens"
    folder.mkdir()
    for p in got:
        shutil.copy(p, folder / p.name)
    assert len(sources.retrieve(str(folder), speech(), tmp_path / "b")) == 3
    with pytest.raises(sources.LayoutError, match="does not exist"):
        sources.retrieve(str(tmp_path / "nowhere"), speech(), tmp_path / "c")
    (tmp_path / "extracted" / "test" / "audio").mkdir(parents=True)
    with pytest.raises(sources.LayoutError, match="already extracted audio"):
        sources.retrieve(str(tmp_path / "extracted"), speech(), tmp_path / "d")


def test_layout_check_names_what_is_missing(tiny_extracted, tmp_path):
    sources.check_layout(tiny_extracted, speech())
    broken = tmp_path / "broken"
    shutil.copytree(tiny_extracted / "train", broken / "train")
    shutil.rmtree(broken / "train" / "audio" / "marvin")
    with pytest.raises(sources.LayoutError) as error:
        sources.check_layout(broken, speech())
    message = str(error.value)
    assert "marvin" in message and "test/audio/clip_" in message and "sample_submission.csv" in message


def test_a_damaged_archive_in_the_users_folder_is_named_and_never_to_be_deleted(tiny_demo, tmp_path):
    """A truncated train.7z and a test.7z with corrupt bytes in the user's own folder: each error names
    the user's file (not the workflow's copy) and says to download it again, never to delete it."""
    folder = tmp_path / "download"
    archives.unpack_competition_zip(tiny_demo / f"{COMPETITION}.zip", folder, ARCHIVES)
    original = (folder / "train.7z").read_bytes()
    (folder / "train.7z").write_bytes(original[: len(original) - 5000])
    with pytest.raises(archives.ArchiveError) as error:
        sources.retrieve(str(folder), speech(), tmp_path / "resources")
    assert str(folder / "train.7z") in str(error.value) and "download it again" in str(error.value)
    assert "delete it" not in str(error.value)
    (folder / "train.7z").write_bytes(original)
    corrupt = bytearray((folder / "test.7z").read_bytes())
    middle = len(corrupt) // 2
    corrupt[middle : middle + 64] = bytes(64)  # zeroed data inside the compressed stream
    (folder / "test.7z").write_bytes(bytes(corrupt))
    with pytest.raises(archives.ArchiveError, match=r"test\.7z.*download it again") as error:
        sources.retrieve(str(folder), speech(), tmp_path / "resources")
    assert "Traceback" not in str(error.value)


def test_test_clips_and_sample_submission_are_reconciled_at_extraction(tiny_extracted, tmp_path):
    """A clip listed but absent (or present but unlisted) fails at extraction, not after every training job."""
    root = shutil.copytree(tiny_extracted, tmp_path / "competition")
    sources.reconcile_test_clips(root, speech())
    clips = sorted((root / "test" / "audio").glob("*.wav"))
    clips[0].unlink()
    shutil.copy(clips[1], root / "test" / "audio" / "clip_fffffffff.wav")
    with pytest.raises(sources.LayoutError) as error:
        sources.reconcile_test_clips(root, speech())
    message = str(error.value)
    assert f"1 clips listed in sample_submission.csv are not in test/audio (e.g. ['{clips[0].name}'])" in message
    assert "clip_fffffffff.wav" in message


def test_an_interrupted_extractions_staging_folder_is_removed(tiny_demo, tmp_path):
    archives.unpack_competition_zip(tiny_demo / f"{COMPETITION}.zip", tmp_path, ARCHIVES)
    leftover = tmp_path / ".extract-killed"
    (leftover / "train").mkdir(parents=True)
    sources.extract(tmp_path, tmp_path / "extracted", speech())
    assert not leftover.exists() and not list(tmp_path.glob(".extract-*"))
    assert (tmp_path / "extracted" / "sample_submission.csv").is_file()


def test_a_failed_extraction_leaves_the_previous_layout_alone(tiny_demo, tmp_path):
    """The layout is checked in the staging folder: a download that does not pass leaves what was
    extracted before untouched, and no half layout."""
    archives.unpack_competition_zip(tiny_demo / f"{COMPETITION}.zip", tmp_path, ARCHIVES)
    sources.extract(tmp_path, tmp_path / "extracted", speech())
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "extracted").rglob("*"))
    archives.pack_7z(tmp_path / "extracted", tmp_path / "train.7z", ["sample_submission.csv"])  # no train/ inside
    with pytest.raises(sources.LayoutError, match="train/audio/"):
        sources.extract(tmp_path, tmp_path / "extracted", speech())
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "extracted").rglob("*")) == before


def test_a_member_past_the_zip_size_limit_is_packed_as_zip64(tmp_path, monkeypatch):
    """A real-size competition's test archive is over 2 GiB, the plain zip format's limit: packed
    without ZIP64 the zip fails ('File size too large'). The limit is lowered here to test that."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    member = tmp_path / "test.7z"
    member.write_bytes(bytes(range(256)) * 20)  # 5,120 bytes: over the lowered limit
    small = tmp_path / "sample_submission.7z"
    small.write_bytes(b"x" * 10)
    archives.pack_competition_zip([member, small], tmp_path / "competition.zip")
    archives.check_zip(tmp_path / "competition.zip")
    with zipfile.ZipFile(tmp_path / "competition.zip") as zipped:
        assert zipped.read("test.7z") == member.read_bytes() and zipped.read("sample_submission.7z") == b"x" * 10
