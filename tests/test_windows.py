"""Variable-length clips cached as windows: random crops in training, the mean over windows at prediction."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from wavefold import cache, index
from wavefold.audio import AudioPolicy, conform
from wavefold.cache import ClipWindows, average_rows
from wavefold.competitions import LabelSpace
from wavefold.training.data import FoldData
from wavefold.training.inference import predict_clips

POLICY = AudioPolicy(sample_rate=1000, clip_seconds=2.0, long="windows", window_hop_seconds=1.0)


def test_windows_cover_a_long_clip_to_its_end_and_a_short_one_is_padded():
    assert POLICY.clip_samples == 2000 and POLICY.hop_samples == 1000
    assert [POLICY.window_count(n) for n in (500, 2000, 2001, 3000, 3500, 30000)] == [1, 1, 2, 2, 3, 29]
    samples = np.arange(3500, dtype=np.int16)
    rows = POLICY.windows(samples)
    assert rows.shape == (3, 2000)
    assert rows[:, 0].tolist() == [0, 1000, 1500] and rows[-1, -1] == 3499  # the last window ends at the end
    short = POLICY.windows(np.ones(500, np.int16))
    assert short.shape == (1, 2000) and short[0, :500].all() and not short[0, 500:].any()
    # Trim keeps one window whatever the length.
    assert AudioPolicy(sample_rate=1000, clip_seconds=2.0).window_count(30000) == 1


def test_the_index_counts_the_windows_the_cache_then_holds(tmp_path):
    rng = np.random.default_rng(0)
    lengths = {"a.wav": 0.7, "b.wav": 3.5, "c.wav": 6.2}  # seconds, at 4 kHz: resampled to the policy's rate
    for name, seconds in lengths.items():
        sf.write(tmp_path / name, rng.uniform(-0.5, 0.5, int(seconds * 4000)), 4000, subtype="PCM_16")
    reports = index.inspect_all([tmp_path / n for n in lengths], POLICY, 1, "test")
    counts = [index._cached_columns(r, POLICY)["windows"] for r in reports]
    assert counts == [1, 3, 6]
    out = tmp_path / "cache" / "train.npy"
    cache.write_clips(tmp_path, list(lengths), out, POLICY, 1, "test", ClipWindows(counts))
    stored = np.load(out)
    assert stored.shape == (10, 2000)
    whole = conform(tmp_path / "c.wav", POLICY)[0]
    assert len(whole) == 6200 and np.array_equal(stored[4:10], POLICY.windows(whole))  # c's six windows, in order
    with pytest.raises(RuntimeError, match="b.wav decodes to 3 windows where the index counted 2"):
        cache.write_clips(tmp_path, list(lengths), out, POLICY, 1, "test", ClipWindows([1, 2, 6]))


def test_clip_windows_find_each_clips_rows():
    windows = ClipWindows([1, 3, 2])  # rows: clip 0 -> 0; clip 1 -> 1, 2, 3; clip 2 -> 4, 5
    rows, owner = windows.all_rows(np.array([2, 0, 1]))
    assert rows.tolist() == [4, 5, 0, 1, 2, 3] and owner.tolist() == [0, 0, 1, 2, 2, 2]
    assert windows.clip_of(np.array([0, 1, 3, 4, 5])).tolist() == [0, 1, 1, 2, 2]
    drawn = windows.random_rows(np.full(3000, 1), np.random.default_rng(0))
    assert set(drawn) == {1, 2, 3} and np.bincount(drawn)[1:].min() > 900  # every window, about equally often
    assert average_rows(np.array([[1.0], [3.0], [5.0]]), np.array([0, 0, 1]), 2).tolist() == [[2.0], [5.0]]


def test_training_draws_a_different_crop_of_a_long_clip_each_time():
    clips = np.zeros((6, 4), np.int16)
    space = LabelSpace("ab", ("a", "b"), ("a", "b"), ("a", "b"))
    data = FoldData(clips=clips, variants=np.zeros((1, 4), np.int16), variant_index=np.array([0]),
                    variant_targets=np.array([1]), noise=np.zeros(4, np.int16), train_rows=np.array([0, 1]),
                    train_targets=np.array([0, 1]), train_noise=np.zeros((0, 2)), val_rows=np.array([2]),
                    val_targets=np.array([0]), val_ids=["c"], val_silence=None, space=space, samples=4,
                    windows=ClipWindows([1, 4, 1]), pseudo_clips=np.zeros((3, 4), np.int16),
                    pseudo_windows=ClipWindows([2, 1]))  # fmt: skip
    # A plan's sources: clip 1 (rows 1-4) many times, the variant (address 3), test clip 0 (rows 0-1 of
    # the test cache, behind the train cache and the variant), silence (-1).
    source = np.array([1] * 400 + [3, 4, 4, 4, -1])
    rows = data.cache_rows(source, np.random.default_rng(0))
    assert set(rows[:400]) == {1, 2, 3, 4}
    assert rows[400] == 6 and set(rows[401:404]) <= {7, 8} and rows[404] == -1
    again = data.cache_rows(source, np.random.default_rng(1))
    assert not np.array_equal(rows[:400], again[:400])  # another epoch, other crops


def test_a_clips_probabilities_are_the_mean_over_its_windows():
    class Level(torch.nn.Module):  # "probability" of class 1 grows with the window's mean level
        def forward(self, wave):
            level = wave.mean(1, keepdim=True) * 100
            return torch.cat([torch.zeros_like(level), level], 1)

    clips = np.repeat(np.array([[0], [100], [300], [-200]], np.int16), 8, axis=1)  # four rows of 8 samples
    windows = ClipWindows([1, 3])  # clip 0: row 0; clip 1: rows 1-3
    per_row = torch.softmax(torch.tensor([[0.0, v * 100 / 32768] for v in (0, 100, 300, -200)]), 1).numpy()
    got = predict_clips(Level(), clips, windows, np.array([1, 0]), torch.device("cpu"), 2)
    assert got == pytest.approx(np.array([per_row[1:].mean(0), per_row[0]]), abs=1e-6)
    extra = np.full((1, 8), 50, np.int16)  # silence examples come after the clips, one row each
    with_extra = predict_clips(Level(), clips, windows, np.array([1]), torch.device("cpu"), 2, extra)
    assert with_extra.shape == (2, 2) and with_extra[0] == pytest.approx(per_row[1:].mean(0), abs=1e-6)


def test_folds_and_cache_of_different_runs_are_refused():
    from wavefold.training.data import load_fold

    folds = pd.DataFrame({"id": ["a", "b"], "target": ["a", "b"], "label": ["a", "b"], "group": ["a", "b"],
                          "windows": [1, 3], "fold": [0, 1]})  # fmt: skip
    space = LabelSpace("ab", ("a", "b"), ("a", "b"), ("a", "b"))
    empty = pd.DataFrame(columns=["fold", "start", "length", "gain", "id"])
    with pytest.raises(ValueError, match="train cache has 3 rows where the folds table's clips have 4"):
        load_fold(np.zeros((3, 4), np.int16), np.zeros(4, np.int16), folds, empty, empty, 0, space)


def test_the_row_reader_reads_what_the_memory_map_holds(tmp_path):
    rows = np.arange(40 * 6, dtype=np.int16).reshape(40, 6)
    for save, name in ((np.save, "v1.npy"), (None, "streamed.npy")):
        path = tmp_path / name
        if save:
            save(path, rows)
        else:  # as write_clips writes it: a version-2 header, then the rows
            with open(path, "wb") as stream:
                np.lib.format.write_array_header_2_0(stream, {"descr": "<i2", "fortran_order": False, "shape": rows.shape})
                stream.write(rows.tobytes())
        reader = cache.RowReader(path)
        assert len(reader) == 40 and np.array_equal(np.load(path), rows)
        for wanted in ([0, 1, 2, 3], [39, 3, 4, 5, 20, 20, 0], [], np.arange(40)):
            assert np.array_equal(reader[np.array(wanted, dtype=np.int64)], rows[np.array(wanted, dtype=np.int64)])
