"""Which round's blend is submitted (wavefold.rounds): the last, unless an earlier one is clearly better."""

import pandas as pd
import pytest

from wavefold import blend, rounds


def scores(per_fold):
    per_fold = pd.Series(per_fold, index=range(len(per_fold)), dtype=float)
    return per_fold.mean(), per_fold


def test_an_earlier_round_clearly_better_on_every_fold_is_submitted():
    choice = rounds.choose_round({1: scores([0.97, 0.96, 0.98]), 2: scores([0.95, 0.94, 0.95])},
                                 {1: "mean", 2: "stacking"}, "auto", 1.0, "map3")  # fmt: skip
    assert choice.round == 1 and "round 1 (mean)" in choice.reason and "made it worse" in choice.reason
    table = choice.table.set_index("round")
    assert table.loc[1, "gap_to_last"] == pytest.approx(0.0233, abs=1e-4) and table.loc[1, "chosen"]
    # 'last' submits the last round whatever its CV, as wavefold did before
    assert rounds.choose_round({1: scores([0.97, 0.96, 0.98]), 2: scores([0.95, 0.94, 0.95])},
                               {1: "mean", 2: "stacking"}, "last", 1.0, "map3").round == 2  # fmt: skip


def test_a_gain_within_the_fold_noise_keeps_the_last_round():
    # Round 1 ahead by 0.01 on average, but it is one fold's +0.05 against the others' -0.01: the
    # per-fold gaps' standard error (0.02) is larger than the gain.
    noisy = {1: scores([0.95, 0.89, 0.89]), 2: scores([0.90, 0.90, 0.90])}
    choice = rounds.choose_round(noisy, {1: "mean", 2: "mean"}, "auto", 1.0, "accuracy")
    assert choice.round == 2 and "no earlier round" in choice.reason
    gap, noise = choice.table.set_index("round").loc[1, ["gap_to_last", "noise"]]
    assert 0 < gap < noise
    # ... while at a laxer bar (0.3 SE) the same gain counts
    assert rounds.choose_round(noisy, {1: "mean", 2: "mean"}, "auto", 0.3, "accuracy").round == 1
    # and a better last round is never traded for an earlier one
    assert rounds.choose_round({1: scores([0.8, 0.8]), 2: scores([0.9, 0.85])}, {1: "a", 2: "b"}, "auto", 0.0,
                               "accuracy").round == 2  # fmt: skip


def test_of_several_better_rounds_the_best_is_submitted():
    choice = rounds.choose_round({1: scores([0.90, 0.91]), 2: scores([0.95, 0.96]), 3: scores([0.80, 0.80])},
                                 {1: "a", 2: "b", 3: "c"}, "auto", 1.0, "accuracy")  # fmt: skip
    assert choice.round == 2 and list(choice.table["chosen"]) == [False, True, False]


def test_round_scores_read_the_oof_table_by_id_and_fold():
    truth = pd.DataFrame({"id": ["a", "b", "c", "d"], "fold": [0, 0, 1, 1], "label": ["x", "y", "x", "y"]})
    truth = truth.set_index("id")
    # rows in another order than the truth's, one of them wrong (c): fold 0 all right, fold 1 half
    oof = pd.DataFrame({"id": ["d", "c", "b", "a"], "fold": [1, 1, 0, 0], "x": [0.2, 0.3, 0.1, 0.9],
                        "y": [0.8, 0.7, 0.9, 0.1]})  # fmt: skip
    pooled, per_fold = rounds.round_scores(oof, truth, ["x", "y"], blend.accuracy)
    assert pooled == 0.75 and list(per_fold) == [1.0, 0.5]


def test_rounds_scored_on_different_folds_are_refused():
    with pytest.raises(rounds.RoundChoiceError, match="one folds table"):
        rounds.choose_round({1: scores([0.9, 0.9]), 2: scores([0.9, 0.9, 0.9])}, {1: "a", 2: "b"}, "auto", 1.0, "x")
    with pytest.raises(rounds.RoundChoiceError, match="blend.final_round"):
        rounds.choose_round({1: scores([0.9, 0.9])}, {1: "a"}, "best", 1.0, "x")


def test_the_rounds_are_compared_by_what_the_last_blend_ranked_by():
    assert blend.ranking_metric("auto", True, "map3") == "balanced_accuracy"
    assert blend.ranking_metric("auto", False, "map3") == "map3"
    assert blend.ranking_metric("metric", True, "map3") == "map3"
    assert blend.ranking_metric("accuracy", False, "map3") == "accuracy"
