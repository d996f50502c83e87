import re
import zipfile

import numpy as np
import pandas as pd
import soundfile as sf

from conftest import COMPETITION
from wavefold import demo
from wavefold.labels import NOISE_FILES, WORDS


def test_plan_is_deterministic_and_speakers_are_disjoint(tmp_path):
    jobs_a, solution_a = demo.plan(demo.SIZES["tiny"], 7, tmp_path)
    jobs_b, solution_b = demo.plan(demo.SIZES["tiny"], 7, tmp_path)
    assert jobs_a == jobs_b and solution_a.equals(solution_b)
    train_speakers = {j.speaker.id for j in jobs_a if j.path.startswith("train/")}
    test_speakers = {j.speaker.id for j in jobs_a if j.path.startswith("test/") and j.speaker}
    assert train_speakers and test_speakers and not train_speakers & test_speakers
    assert demo.plan(demo.SIZES["tiny"], 8, tmp_path)[1]["fname"].tolist() != solution_a["fname"].tolist()


def test_tiny_demo_has_the_real_layout(tiny_extracted, tiny_demo):
    audio = tiny_extracted / "train" / "audio"
    assert sorted(p.name for p in audio.iterdir()) == sorted(WORDS + ("_background_noise_",))
    assert sorted(p.name for p in (audio / "_background_noise_").glob("*.wav")) == sorted(NOISE_FILES)
    clips = [p for p in audio.glob("*/*.wav") if p.parent.name != "_background_noise_"]
    assert all(re.fullmatch(r"[0-9a-f]{8}_nohash_\d+\.wav", p.name) for p in clips)
    info = sf.info(clips[0])
    assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
    tests = list((tiny_extracted / "test" / "audio").iterdir())
    assert all(re.fullmatch(r"clip_[0-9a-f]{9}\.wav", p.name) for p in tests)
    assert all(sf.info(p).frames == 16000 for p in tests)
    sample = pd.read_csv(tiny_extracted / "sample_submission.csv")
    solution = pd.read_csv(tiny_demo / "solution.csv")
    assert sorted(sample["fname"]) == sorted(p.name for p in tests) == sorted(solution["fname"])
    assert {"silence", "unknown"} <= set(solution["label"]) and set(solution["Usage"]) == {"Public", "Private"}
    assert set(solution["word"].dropna()) & set(demo.UNSEEN_WORDS)
    for listing in ("validation_list.txt", "testing_list.txt"):
        for line in (tiny_extracted / "train" / listing).read_text().split():
            assert (audio / line).is_file()
    with zipfile.ZipFile(tiny_demo / f"{COMPETITION}.zip") as zipped:
        assert "solution.csv" not in " ".join(zipped.namelist())  # the solution stays outside


def test_clips_hold_speech_not_silence(tiny_extracted):
    clip = next((tiny_extracted / "train" / "audio" / "yes").glob("*.wav"))
    samples, _ = sf.read(clip)
    assert np.abs(samples).max() > 0.01


def test_missing_espeak_says_how_to_install(monkeypatch):
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    try:
        demo.require_espeak()
    except demo.MissingSystemPackage as error:
        assert "apt-get install espeak-ng" in str(error)
    else:
        raise AssertionError("no error")
