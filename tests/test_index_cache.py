import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from bad_audio import EXPECTED, clip_name, write_bad_clips
from conftest import speech
from wavefold import cache, index
from wavefold.audio import AudioPolicy
from wavefold.sources import LayoutError
from wavefold.steps import rule_step


@pytest.fixture(scope="module")
def indexed(tiny_extracted, tmp_path_factory):
    root = shutil.copytree(tiny_extracted, tmp_path_factory.mktemp("idx") / "c")
    write_bad_clips(root / "train" / "audio" / "no", dataset_names=True)
    train, noise, problems = index.index_train(root, speech(), AudioPolicy(), workers=2)
    test, test_problems = index.index_test(root, speech(), AudioPolicy(), workers=1)
    return root, train, noise, test, index.problems_frame(problems + test_problems)


def test_manifest_columns_and_membership(indexed):
    root, train, noise, test, problems = indexed
    assert {"id", "path", "target", "label", "group", "speaker", "repeat", "list"} <= set(train.columns)
    assert train["id"].is_unique and set(train["list"]) <= {"training", "validation", "testing"}
    validation = (root / "train" / "validation_list.txt").read_text().split()
    assert set(train.loc[train["list"] == "validation", "id"]) == set(validation)
    assert len(noise) == 6 and test["usable"].all()


def test_rejected_clips_are_listed_not_silently_dropped(indexed):
    _, train, _, _, problems = indexed
    for case, (kinds, rejected) in EXPECTED.items():
        listed = problems[problems["path"] == f"train/audio/no/{clip_name(case)}"]
        assert set(listed["problem"]) == kinds
        assert (f"no/{clip_name(case)}" not in set(train["id"])) == rejected
    summary = index.summarise(*[indexed[i] for i in (1, 3, 2, 4)])
    assert "train empty -> rejected: 1" in summary


def test_cache_rows_follow_the_manifest(indexed, tmp_path):
    root, train, noise, _, _ = indexed
    paths = train["path"].tolist()[:40] + [f"train/audio/no/{clip_name('stereo')}"]
    cache.write_clips(root, paths, tmp_path / "train.npy", AudioPolicy(), workers=1, desc="t")
    array = cache.open_clips(tmp_path / "train.npy")
    assert isinstance(array, np.memmap) and array.shape == (41, 16000)
    first, _ = sf.read(root / paths[0], dtype="int16")
    np.testing.assert_array_equal(array[0, : len(first)], first)
    table = cache.write_noise(root, noise, tmp_path / "noise.npy", AudioPolicy())
    assert table["start"].tolist()[1] == table["length"].tolist()[0]
    assert len(np.load(tmp_path / "noise.npy")) == table["length"].sum()


def test_explained_failure_is_one_clear_message(tmp_path, capsys):
    step = SimpleNamespace(log=[str(tmp_path / "step.log")])
    with pytest.raises(SystemExit) as stop:
        with rule_step(step, "extract"):
            raise LayoutError("the folder is wrong; point source at the zip")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "point source at the zip" in err and "Traceback" not in err
    assert "point source at the zip" in (tmp_path / "step.log").read_text()


def test_a_cache_that_cannot_fit_is_refused_before_writing(indexed, tmp_path, monkeypatch):
    root, train, _, _, _ = indexed
    (tmp_path / "train.partial.npy").write_bytes(b"left by a killed run")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: usage._replace(free=100_000))
    with pytest.raises(cache.DiskFull, match=r"the audio cache train.npy needs 1.3 MB in .*only 0.1 MB is free"):
        cache.write_clips(root, train["path"].tolist()[:40], tmp_path / "train.npy", AudioPolicy(), workers=1, desc="t")
    assert not (tmp_path / "train.npy").exists() and not (tmp_path / "train.partial.npy").exists()
