import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import COMPETITION
from wavefold.competitions import tensorflow_speech_demo as demo
from wavefold.competitions.tensorflow_speech import NOISE_FILES, WORDS


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


def speech_band_contrast(samples: np.ndarray, rate: int = 16000) -> float:
    """dB between the loudest and the quietest fifth of a clip's 25-ms frames, in the speech band
    (300-3400 Hz): a spoken word stands far above its pauses; steady noise does not."""
    frame = 400
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    frequencies = np.fft.rfftfreq(frame, 1 / rate)
    band = np.sort(power[:, (frequencies >= 300) & (frequencies <= 3400)].sum(1))
    fifth = max(1, len(band) // 5)
    return float(10 * np.log10(band[-fifth:].mean() / max(band[:fifth].mean(), 1e-20)))


def test_clips_hold_speech_above_the_noise_floor(tiny_extracted):
    """Every sampled clip of four words has its speech-band energy 20 dB or more above its own quiet
    frames (espeak-ng's word over the room's noise; measured 27-147 dB), where the demo's steady noises
    (white, pink) stay within a few dB of theirs: a silent or noise-only clip would fail."""
    audio = tiny_extracted / "train" / "audio"
    for word in ("yes", "no", "go", "bed"):
        for clip in sorted((audio / word).glob("*.wav"))[:8]:
            assert speech_band_contrast(sf.read(clip)[0]) > 20, clip
    for noise in ("white_noise.wav", "pink_noise.wav"):
        samples = sf.read(audio / "_background_noise_" / noise)[0]
        assert speech_band_contrast(samples[:16000]) < 6, noise


def test_missing_espeak_says_how_to_install(monkeypatch):
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    try:
        demo.require_espeak()
    except demo.MissingSystemPackage as error:
        assert "apt-get install espeak-ng" in str(error)
    else:
        raise AssertionError("no error")


def _speakers(jobs, side):
    return {j.speaker for j in jobs if j.path.startswith(f"{side}/") and j.speaker}


def _inside(value, intervals):
    return any(low <= value <= high for low, high in intervals)


def test_hard_shift_puts_the_test_set_outside_trainings_conditions(tmp_path):
    jobs, solution = demo.plan(demo.SIZES["small"], 3, tmp_path, shift="hard")
    train, test = _speakers(jobs, "train"), _speakers(jobs, "test")
    conditions = demo.SHIFTS["hard"].train
    base = lambda s: s.voice.split("+")[0]  # noqa: E731
    variant = lambda s: s.voice.partition("+")[2]  # noqa: E731
    assert not {base(s) for s in train} & {base(s) for s in test}
    assert not ({variant(s) for s in train} & {variant(s) for s in test}) - {""}
    for speaker in test:
        assert not _inside(speaker.pitch, conditions.pitch) and not _inside(speaker.speed, conditions.speed)
        assert speaker.lowpass_hz < min(low for low, _ in conditions.lowpass_hz)
        assert speaker.noise_kind not in conditions.noise_kinds and speaker.snr_db is not None and speaker.eq
    assert all(not s.eq for s in train)
    # The label mix: ~22% unknown in test against the ~60% of unknown words in train.
    train_words = [j.word for j in jobs if j.path.startswith("train/")]
    train_unknown = sum(w not in demo.COMMANDS for w in train_words) / len(train_words)
    test_unknown = (solution["label"] == "unknown").mean()
    assert train_unknown > 0.6 and 0.15 < test_unknown < 0.3
    novel = solution.query("label == 'unknown'")["word"].isin(demo.UNSEEN_WORDS).mean()
    assert novel > 0.45


def test_no_shift_draws_the_test_set_from_trainings_conditions(tmp_path):
    jobs, solution = demo.plan(demo.SIZES["small"], 3, tmp_path, shift="none")
    conditions = demo.SHIFTS["none"].train
    for speaker in _speakers(jobs, "test"):
        assert speaker.voice.split("+")[0] in conditions.english_voices + conditions.accented_voices
        assert _inside(speaker.pitch, conditions.pitch) and speaker.noise_kind in conditions.noise_kinds
        assert speaker.snr_db is None or _inside(speaker.snr_db, conditions.snr_db)
    assert not solution["word"].isin(demo.UNSEEN_WORDS).any()
    assert 0.5 < (solution["label"] == "unknown").mean() < 0.7


def test_the_mild_shift_is_the_default_and_changes_nothing_but_the_test_side(tmp_path):
    default_jobs, default_solution = demo.plan(demo.SIZES["tiny"], 5, tmp_path)
    mild_jobs, mild_solution = demo.plan(demo.SIZES["tiny"], 5, tmp_path, shift="mild")
    none_jobs, _ = demo.plan(demo.SIZES["tiny"], 5, tmp_path, shift="none")
    assert default_jobs == mild_jobs and default_solution.equals(mild_solution)
    train = lambda jobs: [j for j in jobs if j.path.startswith("train/")]  # noqa: E731
    assert train(mild_jobs) == train(none_jobs)  # the shift is on the test side only
    assert _speakers(mild_jobs, "test") != _speakers(none_jobs, "test")


def test_hard_test_clips_render_through_the_novel_noises_and_eq(tmp_path):
    demo.write_noise(tmp_path, demo.SIZES["tiny"], 3, tmp_path, shift="hard")
    jobs, _ = demo.plan(demo.SIZES["tiny"], 3, tmp_path, shift="hard")
    tests = [j for j in jobs if j.path.startswith("test/")]
    picked = [next(j for j in tests if j.word is None)] + [j for j in tests if j.word][:3]
    for job in picked:
        demo.render(job, str(tmp_path))
        samples, rate = sf.read(tmp_path / job.path)
        assert rate == 16000 and len(samples) == 16000 and 0.0 < np.abs(samples).max() < 1.0
    for kind in demo.NOVEL_NOISE_KINDS:
        noise = demo.make_noise(kind, 1.0, np.random.default_rng(0))
        assert np.isfinite(noise).all() and np.abs(noise).max() == pytest.approx(1.0, abs=1e-6)


def test_a_voice_variant_the_plan_needs_is_required_not_silently_dropped(monkeypatch, tmp_path):
    """An espeak-ng without some of the variants would draw every later speaker differently: the demo
    would not be the one its seed names. The plan refuses, naming the version and the variants."""
    voices = tmp_path / "voices" / "!v"
    voices.mkdir(parents=True)
    for variant in demo.VARIANTS[:-2]:  # all but two
        (voices / variant).write_text("")
    monkeypatch.setattr(demo, "espeak_installation", lambda: ("1.49.2", voices))
    with pytest.raises(demo.MissingSystemPackage) as refused:
        demo.plan(demo.SIZES["tiny"], 7, tmp_path)
    message = str(refused.value)
    assert "espeak-ng 1.49.2" in message and demo.VARIANTS[-1] in message and demo.VARIANTS[-2] in message
    assert demo.VARIANTS[0] + "," not in message


def test_the_installed_espeak_has_every_variant_and_names_its_version():
    version, voices = demo.espeak_installation()
    assert re.fullmatch(r"\d+\.\d+[\w.-]*", version), version
    assert demo.required_variants(demo.VARIANTS + demo.NOVEL_VARIANTS) == demo.VARIANTS + demo.NOVEL_VARIANTS
