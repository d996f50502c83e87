"""The tune stage's parts: the search space checked against a model's settings, the proxy's data
subset (training side only, grouped by speaker), and a study that resumes where it stopped."""

import numpy as np
import pandas as pd
import pytest

from wavefold import tuning
from wavefold.competitions import LabelSpace
from wavefold.training.data import FoldData
from wavefold.settings.training import resolved

SETTINGS = resolved({"architecture": "lenet"})


def test_space_names_settings_by_their_path_and_refuses_what_it_cannot_search():
    dims = tuning.parse_space({"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "augment.freq_masks": {"choices": [0, 2]}},
                              SETTINGS)  # fmt: skip
    assert [d.path for d in dims] == ["lr", "augment.freq_masks"] and dims[1].choices == (0, 2)
    for space, message in [
        ({"augment.noise_prob": {"low": 0, "high": 1}}, "augment.noise_prob: not a setting"),
        ({"lr": {"low": 0.1, "high": 0.01}}, "low < high"),
        ({"lr": {"low": 0.0, "high": 0.01, "log": True}}, "log scale needs low > 0"),
        ({"lr": {"low": 0.001}}, "takes low, high"),
        ({}, "is empty"),
    ]:
        with pytest.raises(tuning.TuneError, match=message):
            tuning.parse_space(space, SETTINGS)


def test_a_trial_changes_only_its_settings_and_always_keeps_the_last_epoch():
    trial = tuning.trial_settings({**SETTINGS, "epoch_selection": "fold", "patience": 3},
                                  {"lr": 0.001, "augment.gain_db": 3.0}, epochs=2)  # fmt: skip
    assert trial.lr == 0.001 and trial.augment["gain_db"] == 3.0 and trial.epochs == 2
    assert trial.epoch_selection == "last" and trial.patience == 0  # the scored fold never chooses the epoch
    assert trial.augment["noise_probability"] == SETTINGS["augment"]["noise_probability"]
    with pytest.raises(tuning.TuneError, match="invalid"):
        tuning.trial_settings({**SETTINGS, "architecture": "matchboxnet"}, {"params.blockz": 3}, epochs=1)


def test_a_trial_that_chooses_a_backbone_loads_that_backbones_weights():
    """tune.space's params.name choosing among timm backbones: each trial loads the weights fetch_weights
    saved for its own choice (not the model's own backbone's), or random ones; a file, the weights of one
    backbone, is refused with the fix."""
    timm = resolved({"architecture": "timm", "params": {"name": "efficientnet_b0",
                                                        "pretrained": "resources/weights/timm/efficientnet_b0.safetensors"}})  # fmt: skip
    trial = tuning.trial_settings(timm, {"params.name": "regnety_008"}, epochs=1)
    assert trial.params == {"name": "regnety_008", "pretrained": "resources/weights/timm/regnety_008.safetensors"}
    scratch = {**timm, "params": {"name": "efficientnet_b0"}}
    assert tuning.trial_settings(scratch, {"params.name": "regnety_008"}, epochs=1).params["pretrained"] is None
    with pytest.raises(tuning.TuneError, match="holds the weights of one backbone.*set pretrained to timm"):
        tuning.trial_settings({**timm, "params": {"name": "a", "pretrained": "weights/a.pth"}}, {"params.name": "b"}, 1)


def test_the_proxy_trains_on_a_share_of_the_training_speakers_and_scores_on_the_whole_fold():
    speakers = pd.Series([f"s{i // 4}" for i in range(80)])  # 20 speakers, 4 clips each
    val = np.arange(60, 80)
    train = np.arange(60)
    sources = np.arange(80)  # one offline variant per clip; variants of training clips are drawable
    data = FoldData(clips=np.zeros((80, 4), np.int16), variants=np.zeros((80, 4), np.int16), variant_index=train.copy(),
                    variant_targets=train % 3, noise=np.zeros(4, np.int16), train_rows=train, train_targets=train % 3,
                    train_noise=np.zeros((0, 2)), val_rows=val, val_targets=val % 3, val_ids=[], val_silence=None,
                    space=LabelSpace("abc", ("a", "b", "c"), ("a", "b", "c"), ("a", "b", "c")),
                    samples=4, variant_clips=sources)  # fmt: skip
    small = tuning.subset_training_side(data, speakers, 0.4, seed=1)
    kept = set(speakers[small.train_rows])
    assert len(kept) == 6 and len(small.train_rows) == 24  # 40% of the 15 training speakers, all their clips
    assert not kept & set(speakers[val])
    assert np.array_equal(small.val_rows, val) and np.array_equal(small.train_targets, small.train_rows % 3)
    assert set(speakers[sources[small.variant_index]]) == kept  # their variants only
    assert tuning.subset_training_side(data, speakers, 1.0, seed=1) is data


def test_a_larger_budget_resumes_the_study_with_new_points(tmp_path):
    dims = tuning.parse_space({"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "weight_decay": {"low": 0.0, "high": 0.1}},
                              SETTINGS)  # fmt: skip
    seen = []

    def objective(values, number):
        seen.append(values)
        return -abs(np.log10(values["lr"]) + 2.5)

    study = tuning.open_study(tmp_path / "study.db", "lenet-x", seed=7)
    assert tuning.run_study(study, dims, objective, budget=3) == 3
    first = tuning.trials_table(study)
    again = tuning.open_study(tmp_path / "study.db", "lenet-x", seed=7)  # a new job, the same file
    assert tuning.run_study(again, dims, objective, budget=5) == 2 and len(seen) == 5
    table = tuning.trials_table(again)
    pd.testing.assert_frame_equal(table.iloc[:3].drop(columns="seconds"), first.drop(columns="seconds"))
    assert table["lr"].nunique() == 5  # a restarted sampler would draw the first points again
    assert tuning.run_study(again, dims, objective, budget=5) == 0
    fragment = tuning.best_fragment(again, "lenet", {"fold": 0, "epochs": 1, "train_share": 0.5})
    best = table.loc[table["accuracy"].idxmax()]
    import yaml

    assert yaml.safe_load(fragment)["training"]["models"]["lenet"] == {
        "lr": best["lr"],
        "weight_decay": best["weight_decay"],
    }
