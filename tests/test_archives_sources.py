import shutil
import zipfile

import pytest

from conftest import COMPETITION
from wavefold import archives, sources


def test_demo_zip_holds_the_competition_archives(tiny_demo):
    with zipfile.ZipFile(tiny_demo / f"{COMPETITION}.zip") as zipped:
        assert set(archives.COMPETITION_ARCHIVES) <= set(zipped.namelist())


def test_truncated_zip_and_7z_are_refused(tiny_demo, tmp_path):
    data = (tiny_demo / f"{COMPETITION}.zip").read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(archives.ArchiveError, match="not a complete zip"):
        archives.unpack_competition_zip(cut, tmp_path / "out")
    paths = archives.unpack_competition_zip(tiny_demo / f"{COMPETITION}.zip", tmp_path / "ok")
    seven = paths[0].read_bytes()
    (tmp_path / "train.7z").write_bytes(seven[: len(seven) - 5000])
    with pytest.raises(archives.ArchiveError, match="train.7z"):
        archives.check_7z(tmp_path / "train.7z")


def test_local_sources(tiny_demo, tmp_path):
    zip_path = tiny_demo / f"{COMPETITION}.zip"
    got = sources.retrieve(str(zip_path), COMPETITION, tmp_path / "a")
    assert [p.name for p in got] == list(archives.COMPETITION_ARCHIVES)
    folder = tmp_path / "sevens"
    folder.mkdir()
    for p in got:
        shutil.copy(p, folder / p.name)
    assert len(sources.retrieve(str(folder), COMPETITION, tmp_path / "b")) == 3
    with pytest.raises(sources.LayoutError, match="does not exist"):
        sources.retrieve(str(tmp_path / "nowhere"), COMPETITION, tmp_path / "c")
    (tmp_path / "extracted" / "train" / "audio").mkdir(parents=True)
    with pytest.raises(sources.LayoutError, match="already extracted audio"):
        sources.retrieve(str(tmp_path / "extracted"), COMPETITION, tmp_path / "d")


def test_layout_check_names_what_is_missing(tiny_extracted, tmp_path):
    sources.check_layout(tiny_extracted)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_extracted / "train", broken / "train")
    shutil.rmtree(broken / "train" / "audio" / "marvin")
    with pytest.raises(sources.LayoutError) as error:
        sources.check_layout(broken)
    message = str(error.value)
    assert "marvin" in message and "test/audio/clip_" in message and "sample_submission.csv" in message
