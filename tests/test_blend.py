"""Blending: honest CV of every candidate, never below the best single model, prior correction, bad tables."""

import numpy as np
import pandas as pd
import pytest

from wavefold import blend
from wavefold.competitions.tensorflow_speech import LABELS

C = len(LABELS)


def noisy_model(y, rng, skill, temperature=1.0):
    """Probabilities whose argmax is right with probability ~skill; errors independent across models."""
    logits = rng.normal(0, 1, (len(y), C))
    logits[np.arange(len(y)), y] += skill
    return blend.scale_temperature(logits, temperature, logs=True)


@pytest.fixture(scope="module")
def oof():
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, 3000)
    folds = np.arange(len(y)) % 5
    P = np.stack([noisy_model(y, rng, s, t) for s, t in ((2.0, 1.0), (2.3, 0.5), (1.5, 2.0))])
    return P, y, folds


def test_every_candidate_is_scored_and_the_blend_beats_the_best_single_model(oof):
    P, y, folds = oof
    result = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y, folds, P[:, :100]), blend.BlendSettings())
    table = result.candidates.set_index("candidate")
    assert set(table.index) == {"a", "b", "c", "mean", "logloss", "accuracy", "stacking", "final"}
    # The final row: the chosen blend's OOF labelled as the test is (argmax, or the label mix matched).
    assert table.loc["final", "kind"] == "final" and not table.loc["final", "chosen"]
    assert table.loc["final", "accuracy"] == table.loc[result.chosen, "accuracy"]
    matching = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y, folds, P[:, :100]),
                               blend.BlendSettings(match_mix=True))  # fmt: skip
    matched = blend.match_label_mix(matching.oof)[0]
    final = matching.candidates.set_index("candidate").loc["final", "accuracy"]
    assert final == pytest.approx(blend.accuracy(matched, y)) and final != blend.accuracy(matching.oof, y)
    best_single = table.loc[["a", "b", "c"], "accuracy"].max()
    assert table.loc[result.chosen, "accuracy"] >= best_single
    assert table.loc[result.chosen, "kind"] == "blend"  # independent errors: averaging must help
    assert result.test.shape == (100, C) and np.allclose(result.test.sum(1), 1)
    weights = result.weights.set_index("model")
    assert np.allclose(weights[["logloss", "accuracy", "mean"]].sum(), 1)
    assert (weights[["logloss", "accuracy"]] >= 0).all().all()


def test_a_useless_model_gets_little_weight_and_a_lone_model_is_its_own_blend(oof):
    P, y, folds = oof
    rng = np.random.default_rng(1)
    useless = blend.scale_temperature(rng.normal(0, 1, (len(y), C)), 1.0, logs=True)
    result = blend.fit_blend(blend.Predictions(["a", "b", "noise"], np.stack([P[0], P[1], useless]), y, folds, P[:, :10]),
                             blend.BlendSettings())  # fmt: skip
    assert result.weights.set_index("model").loc["noise", "logloss"] < 0.1
    alone = blend.fit_blend(blend.Predictions(["a"], P[:1], y, folds, P[:1, :10]), blend.BlendSettings())
    assert alone.chosen == "a" and list(alone.candidates["candidate"]) == ["a", "final"]


def test_temperature_is_recovered():
    rng = np.random.default_rng(2)
    y = rng.integers(0, C, 4000)
    logits = rng.normal(0, 1, (len(y), C))
    logits[np.arange(len(y)), y] += 2
    calibrated = blend.scale_temperature(logits, 1.0, logs=True)
    sampled = np.array([rng.choice(C, p=p) for p in calibrated])  # labels drawn from the calibrated model
    overconfident = blend.scale_temperature(logits, 0.4, logs=True)
    assert blend.fit_temperature(overconfident, sampled) == pytest.approx(1 / 0.4, rel=0.15)


def test_em_recovers_a_shifted_prior():
    rng = np.random.default_rng(3)
    train_prior = np.full(C, 1 / C)
    test_prior = np.full(C, 0.5 / (C - 1))
    test_prior[LABELS.index("unknown")] = 0.5
    y = rng.choice(C, size=6000, p=test_prior)
    # Scores s = N(0, 1) + mu on the true class: the Bayes posterior under a uniform prior is softmax(mu s).
    mu = 1.5
    scores = rng.normal(0, 1, (len(y), C))
    scores[np.arange(len(y)), y] += mu
    posteriors = blend.scale_temperature(mu * scores, 1.0, logs=True)
    adjusted, prior = blend.em_prior(posteriors, train_prior)
    assert prior[LABELS.index("unknown")] == pytest.approx(0.5, abs=0.08)
    assert blend.accuracy(adjusted, y) > blend.accuracy(posteriors, y)


def test_bad_tables_are_named(tmp_path):
    good = pd.DataFrame(np.full((2, C), 1 / C), columns=list(LABELS))
    good.insert(0, "fname", ["a.wav", "b.wav"])
    path = tmp_path / "teammate.csv"
    good.drop(columns="unknown").to_csv(path, index=False)
    with pytest.raises(blend.BlendError, match=r"teammate.csv: missing columns \['unknown'\]"):
        blend.read_table(path, "fname", LABELS)
    good.to_csv(path, index=False)
    table = blend.read_table(path, "fname", LABELS)
    with pytest.raises(blend.BlendError, match="teammate.csv: 1 of 3 clips have no prediction"):
        blend.align(table, pd.Index(["a.wav", "b.wav", "c.wav"]), "fname", path, LABELS)
    good.loc[0, "yes"] = np.nan
    good.to_csv(path, index=False)
    with pytest.raises(blend.BlendError, match="finite"):
        blend.read_table(path, "fname", LABELS)


def test_pure_noise_models_blend_to_chance_where_an_in_sample_fit_would_not():
    """Eight models of pure noise: every fitted blend's CV is at chance. Fitted and scored on the same
    rows, the stacker would look far better: the CV would catch an in-sample blend."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, C, 600)
    folds = np.arange(len(y)) % 5
    P = np.stack([blend.scale_temperature(rng.normal(0, 1, (len(y), C)), 1.0, logs=True) for _ in range(8)])
    result = blend.fit_blend(blend.Predictions([f"noise{i}" for i in range(8)], P, y, folds, P[:, :10]),
                             blend.BlendSettings())  # fmt: skip
    fitted = result.candidates.set_index("candidate").loc[["logloss", "accuracy", "stacking"], "accuracy"]
    chance, spread = 1 / C, 3 * np.sqrt((1 / C) * (1 - 1 / C) / len(y))
    assert (fitted < chance + spread).all(), fitted
    in_sample = blend.accuracy(blend.apply_stacker(blend.fit_stacker(P, y), P), y)
    assert in_sample > chance + 3 * spread  # what an in-sample CV would have reported


def test_a_folds_blend_is_fitted_without_that_folds_rows(oof):
    """The fold-k test table (pseudo-labels for round 2's fold-k models) must not change when fold k's
    OOF rows change; another fold's table does."""
    P, y, folds = oof
    rng = np.random.default_rng(5)
    fold_tests = {k: P[:, :50] * rng.uniform(0.5, 1.5, (3, 50, 1)) for k in range(5)}
    settings = blend.BlendSettings(method="logloss")
    before = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y, folds, P[:, :50], fold_tests=fold_tests),
                             settings)  # fmt: skip
    y_changed = y.copy()
    y_changed[folds == 2] = rng.integers(0, C, (folds == 2).sum())  # fold 2's labels scrambled
    after = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y_changed, folds, P[:, :50], fold_tests=fold_tests),
                            settings)  # fmt: skip
    np.testing.assert_allclose(after.fold_tests[2], before.fold_tests[2])
    assert not np.allclose(after.fold_tests[0], before.fold_tests[0])
    assert not np.allclose(before.fold_tests[0], before.fold_tests[1])  # each fold its own models' predictions


def test_em_can_start_from_the_prior_the_models_were_trained_under():
    """Balanced training (every class ~1/11) meets a test set that is half unknown: EM must start from the
    training mix, not the OOF mix, or it leaves the probabilities where they are."""
    rng = np.random.default_rng(6)
    trained = np.full(C, 0.91 / 11)
    trained[LABELS.index("silence")] = 0.09
    test_prior = np.full(C, 0.5 / (C - 1))
    test_prior[LABELS.index("unknown")] = 0.5
    y_test = rng.choice(C, size=4000, p=test_prior)
    scores = rng.normal(0, 1, (len(y_test), C))
    scores[np.arange(len(y_test)), y_test] += 1.5
    posteriors = blend.normalise(np.exp(1.5 * scores) * trained)  # Bayes posteriors under the training mix
    y_oof = rng.choice(C, size=3000, p=test_prior)  # OOF that happens to have the test's mix
    folds = np.arange(len(y_oof)) % 3
    oof_scores = rng.normal(0, 1, (len(y_oof), C))
    oof_scores[np.arange(len(y_oof)), y_oof] += 1.5
    P_oof = blend.normalise(np.exp(1.5 * oof_scores) * trained)[None]
    settings = blend.BlendSettings(prior_correction="em", em_start="trained", temperature=False, em_max_ratio=8.0)
    result = blend.fit_blend(blend.Predictions(["m"], P_oof, y_oof, folds, posteriors[None], trained_priors={"m": trained}),
                             settings)  # fmt: skip
    np.testing.assert_allclose(result.reference_prior, trained)
    assert result.test_prior[LABELS.index("unknown")] == pytest.approx(0.5, abs=0.08)
    assert blend.accuracy(result.test, y_test) > blend.accuracy(posteriors, y_test) + 0.02


def test_bounded_prior_stays_within_its_ratio_and_sums_to_one():
    reference = np.full(C, 1 / C)
    wild = np.full(C, 0.01 / (C - 1))
    wild[LABELS.index("unknown")] = 0.99
    bounded = blend.bound_prior(wild, reference, 3.0)
    assert bounded.sum() == pytest.approx(1.0)
    assert bounded[LABELS.index("unknown")] == pytest.approx(3 / C)
    assert (bounded >= reference / 3 - 1e-9).all() and (bounded <= reference * 3 + 1e-9).all()
    inside = blend.normalise(reference * np.linspace(0.6, 1.5, C))
    np.testing.assert_allclose(blend.bound_prior(inside, reference, 3.0), inside)


def test_bounded_em_holds_back_where_unfamiliar_audio_looks_unknown():
    """Half the test's command clips sound unlike training and come out as 'unknown'-ish: unbounded EM
    follows them and sends most of the test set to unknown; the bound keeps the estimate near the truth
    and the accuracy above the unbounded one's."""
    rng = np.random.default_rng(11)
    trained = np.full(C, 1 / C)
    truth = np.full(C, 0.75 / (C - 2))
    truth[LABELS.index("unknown")], truth[LABELS.index("silence")] = 0.2, 0.05
    y = rng.choice(C, size=5000, p=truth)
    scores = rng.normal(0, 1, (len(y), C))
    scores[np.arange(len(y)), y] += 2.0
    unfamiliar = (y < 10) & (rng.random(len(y)) < 0.5)
    scores[unfamiliar, LABELS.index("unknown")] += 2.2  # unfamiliar audio: the unknown logit rises
    posteriors = blend.normalise(np.exp(scores))
    unknown = LABELS.index("unknown")
    free_adjusted, free_prior = blend.em_prior(posteriors, trained)
    held_adjusted, held_prior = blend.em_prior(posteriors, trained, max_ratio=3.0)
    assert free_prior[unknown] > 0.45  # the failure the bound exists for
    assert abs(held_prior[unknown] - 0.2) < abs(free_prior[unknown] - 0.2) - 0.15
    assert blend.accuracy(held_adjusted, y) > blend.accuracy(free_adjusted, y) + 0.05


def test_auto_prefers_the_simpler_candidate_unless_the_gain_beats_the_fold_noise():
    candidates = pd.DataFrame({
        "candidate": ["a", "b", "mean", "stacking"], "kind": ["model", "model", "blend", "blend"],
        "accuracy": [0.80, 0.78, 0.85, 0.86], "log_loss": [0.6, 0.7, 0.5, 0.45],
    })  # fmt: skip
    per_fold = {"a": np.array([0.80, 0.79, 0.81]), "b": np.array([0.78, 0.77, 0.79]),
                "mean": np.array([0.86, 0.83, 0.86]), "stacking": np.array([0.85, 0.87, 0.86])}  # fmt: skip
    chosen, reason = blend.choose_auto(candidates, per_fold, noise_se=1.0)
    assert chosen == "mean" and "stacking" in reason  # +0.01 on average, but not fold after fold
    per_fold["stacking"] = per_fold["mean"] + np.array([0.010, 0.012, 0.008])  # ahead on every fold
    candidates.loc[3, "accuracy"] = per_fold["stacking"].mean()
    assert blend.choose_auto(candidates, per_fold, noise_se=1.0)[0] == "stacking"
    assert blend.choose_auto(candidates, per_fold, noise_se=100.0)[0] == "mean"  # all gains within "noise"


def test_calibrated_em_recovers_the_test_mix_where_the_models_own_prior_misleads():
    """Models trained 'balanced' whose probabilities still lean to unknown (a bias a balanced sampler does
    not remove): EM from the trained mix overshoots; calibrated on OOF first, EM starts from the OOF
    mix and lands on the test's."""
    rng = np.random.default_rng(8)
    unknown = LABELS.index("unknown")
    oof_mix = np.full(C, 0.4 / (C - 1))
    oof_mix[unknown] = 0.6
    test_mix = np.full(C, 0.7 / (C - 1))
    test_mix[unknown] = 0.3
    lean = np.zeros(C)
    lean[unknown] = 1.5  # the models' own bias toward unknown

    def predictions(y):
        scores = rng.normal(0, 1, (len(y), C))
        scores[np.arange(len(y)), y] += 2.0
        return blend.normalise(np.exp(2.0 * scores + lean))

    y_oof = rng.choice(C, size=6000, p=oof_mix)
    y_test = rng.choice(C, size=6000, p=test_mix)
    P_oof, P_test = predictions(y_oof)[None], predictions(y_test)[None]
    folds = np.arange(len(y_oof)) % 3
    trained = {"m": np.full(C, 1 / C)}
    estimate = {}
    for start in ("trained", "calibrated"):
        settings = blend.BlendSettings(prior_correction="em", em_start=start, em_max_ratio=1e6, temperature=False)
        estimate[start] = blend.fit_blend(blend.Predictions(["m"], P_oof, y_oof, folds, P_test, trained_priors=trained),
                                          settings)  # fmt: skip
    assert estimate["calibrated"].reference_prior[unknown] == pytest.approx(0.6, abs=0.02)  # the OOF mix
    assert estimate["calibrated"].test_prior[unknown] == pytest.approx(0.3, abs=0.04)
    assert abs(estimate["trained"].test_prior[unknown] - 0.3) > 0.1


def flat_unfamiliar_posteriors(rng, n=4000):
    """A test set with 20% unknown whose command clips sound unfamiliar: their posteriors are flat,
    the right command still the most likely command, and 'unknown' a steady ~0.25 that wins the argmax
    of most of them — while the probabilities themselves still expect ~20-25% unknown."""
    unknown = LABELS.index("unknown")
    mix = np.full(C, 0.8 / (C - 1))
    mix[unknown] = 0.2
    y = rng.choice(C, size=n, p=mix)
    scores = rng.normal(0, 0.3, (n, C))
    scores[np.arange(n), y] += 1.0
    scores[:, unknown] += np.where(y == unknown, 1.5, 1.0)
    return blend.normalise(np.exp(scores)), y, unknown


def test_matching_the_label_mix_undoes_the_argmax_rush_to_unknown():
    P, y, unknown = flat_unfamiliar_posteriors(np.random.default_rng(3))
    argmax_unknown = (P.argmax(1) == unknown).mean()
    matched, weights = blend.match_label_mix(P)
    shares = np.bincount(matched.argmax(1), minlength=C) / len(y)
    assert argmax_unknown > 0.5  # the failure: flat posteriors send most clips to unknown
    assert np.abs(shares - P.mean(0)).sum() / 2 < 0.01  # the labels now carry the probabilities' own mix
    assert abs(shares[unknown] - 0.2) < abs(argmax_unknown - 0.2) - 0.25
    assert blend.accuracy(matched, y) > blend.accuracy(P, y) + 0.2
    assert np.allclose(matched.sum(1), 1) and weights[unknown] < weights.max()


def test_matching_leaves_labels_alone_where_argmax_already_carries_the_mix(oof):
    P, y, _ = oof
    calibrated = P[0]
    matched, _ = blend.match_label_mix(calibrated)
    changed = (matched.argmax(1) != calibrated.argmax(1)).mean()
    assert changed < 0.02 and abs(blend.accuracy(matched, y) - blend.accuracy(calibrated, y)) < 0.01


def test_the_blend_matches_its_test_tables_and_the_fold_wise_ones_alike(oof):
    P, y, folds = oof
    rng = np.random.default_rng(5)
    P_test, _, unknown = flat_unfamiliar_posteriors(rng, 1000)
    P_test = np.stack([P_test] * 3)
    fold_tests = {int(k): P_test for k in np.unique(folds)}
    settings = blend.BlendSettings(method="mean", match_mix=True)
    on = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y, folds, P_test, fold_tests=fold_tests, labels=LABELS),
                         settings)  # fmt: skip
    off = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y, folds, P_test, fold_tests=fold_tests),
                          blend.BlendSettings(method="mean", match_mix=False))  # fmt: skip
    assert (off.test.argmax(1) == unknown).mean() > 0.5
    assert (on.test.argmax(1) == unknown).mean() < 0.35
    for k, table in on.fold_tests.items():  # pseudo-labels are made by the same rule as the submission
        assert (table.argmax(1) == unknown).mean() == pytest.approx((on.test.argmax(1) == unknown).mean(), abs=0.02)
    assert np.array_equal(on.argmax_test, off.test) and on.matched_oof_accuracy is not None
    mix = blend.label_mix(on).set_index("label")
    assert mix.loc["unknown", "argmax"] > 0.5 and mix.loc["unknown", "predicted"] < 0.35


def _mix(rng, n, unknown_share):
    unknown = LABELS.index("unknown")
    y = rng.integers(0, C - 1, n)
    y[y >= unknown] += 1  # the other 11 classes, evenly
    y[rng.random(n) < unknown_share] = unknown
    return y


def test_balanced_accuracy_is_the_mean_recall_per_class():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    y = _mix(rng, 2000, 0.6)
    p = noisy_model(y, rng, 1.5)
    assert blend.balanced_accuracy(p, y) == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert blend.balanced_accuracy(p, y) != pytest.approx(blend.accuracy(p, y), abs=0.01)


def test_choosing_by_balanced_accuracy_holds_up_on_a_test_mix_unlike_the_oof_rows():
    """Models trained on a balanced mix, blended on OOF rows 60% unknown, submitted on a test set 20%
    unknown. The stacker learns the OOF rows' lean to unknown: the best CV accuracy, and the worse test
    score. Ranked by balanced accuracy (blind to the mix), auto keeps a blend that does not lean."""
    rng = np.random.default_rng(4)
    y, y_test = _mix(rng, 4000, 0.6), _mix(rng, 4000, 0.2)
    folds = np.arange(len(y)) % 5
    skills = (0.8, 1.0)  # weak models, as under a shift: the stacker's lean to unknown costs the most
    P = np.stack([noisy_model(y, rng, s) for s in skills])
    P_test = np.stack([noisy_model(y_test, rng, s) for s in skills])
    by_accuracy = blend.fit_blend(blend.Predictions(["a", "b"], P, y, folds, P_test),
                                  blend.BlendSettings(choose_by="accuracy"))  # fmt: skip
    by_balanced = blend.fit_blend(blend.Predictions(["a", "b"], P, y, folds, P_test),
                                  blend.BlendSettings(choose_by="balanced_accuracy"))  # fmt: skip
    assert by_accuracy.chosen == "stacking"  # the failure: CV accuracy rewards the lean
    assert by_balanced.chosen != "stacking" and "balanced_accuracy" in by_balanced.reason
    table = by_balanced.candidates.set_index("candidate")
    assert table.loc[by_balanced.chosen, "balanced_accuracy"] >= table.loc["stacking", "balanced_accuracy"]
    assert blend.accuracy(by_balanced.test, y_test) > blend.accuracy(by_accuracy.test, y_test) + 0.02
    with pytest.raises(blend.BlendError, match="blend.choose_by"):
        blend.fit_blend(blend.Predictions(["a", "b"], P, y, folds, P_test), blend.BlendSettings(choose_by="f1"))


def _unfamiliar_model(y, rng, skill, pull_to_unknown):
    """Like noisy_model, on audio the model has not met: weaker, and leaning to unknown (on unfamiliar
    audio, "none of the commands" is what a keyword spotter says)."""
    logits = rng.normal(0, 1, (len(y), C))
    logits[np.arange(len(y)), y] += skill
    logits[:, LABELS.index("unknown")] += pull_to_unknown
    return blend.scale_temperature(logits, 1.0, logs=True)


def test_the_shift_check_tells_an_unfamiliar_test_set_from_another_mix_and_auto_ranks_accordingly():
    """Two test sets for the same OOF rows (60% unknown): one like the folds' audio but 50% unknown
    (the default demo), one of audio the models have not met, 20% unknown (the hard shift). The label
    mix alone differs in the first, so the models agree as often as on the OOF rows, and the stacker's
    lean to the OOF mix is worth keeping; in the second they disagree far more often, the stacker's
    lean adds to the models' own pull to unknown, and ranking by balanced accuracy avoids it.
    auto must do each where it pays: always by accuracy fails the second, always balanced the first."""
    rng = np.random.default_rng(5)
    y = _mix(rng, 4000, 0.6)
    folds = np.arange(len(y)) % 5
    P = np.stack([noisy_model(y, rng, s) for s in (2.0, 2.5)])
    y_mix, y_unfamiliar = _mix(rng, 4000, 0.5), _mix(rng, 4000, 0.2)
    P_mix = np.stack([noisy_model(y_mix, rng, s) for s in (2.0, 2.5)])
    P_unfamiliar = np.stack([_unfamiliar_model(y_unfamiliar, rng, s, 1.0) for s in (1.0, 1.3)])

    def fit(P_test, choose_by):
        return blend.fit_blend(blend.Predictions(["a", "b"], P, y, folds, P_test),
                               blend.BlendSettings(choose_by=choose_by))  # fmt: skip

    same = fit(P_mix, "auto")
    assert not same.shift.shifted and same.shift.ratio == pytest.approx(1.0, abs=0.05)
    assert same.chosen_by == "accuracy" and same.chosen == "stacking"
    assert blend.accuracy(same.test, y_mix) > blend.accuracy(fit(P_mix, "balanced_accuracy").test, y_mix) + 0.02

    moved = fit(P_unfamiliar, "auto")
    assert moved.shift.shifted and moved.shift.ratio > 1.4
    assert moved.shift.confidence_test < moved.shift.confidence_oof
    assert moved.chosen_by == "balanced_accuracy" and moved.chosen != "stacking" and "shift check" in moved.reason
    by_accuracy = fit(P_unfamiliar, "accuracy")
    assert by_accuracy.chosen == "stacking" and not by_accuracy.reason.endswith("shifted)")
    assert blend.accuracy(moved.test, y_unfamiliar) > blend.accuracy(by_accuracy.test, y_unfamiliar) + 0.05
    table = moved.shift.table()
    assert table.loc[0, "shifted"] and table.loc[0, "ratio"] == pytest.approx(moved.shift.ratio)


def test_the_shift_check_does_not_judge_models_that_disagree_on_most_oof_rows():
    """Models near chance (a first epoch) disagree on most rows anywhere: their ratio says nothing."""
    rng = np.random.default_rng(7)
    y = _mix(rng, 2000, 0.6)
    P = np.stack([noisy_model(y, rng, s) for s in (1.5, 2.0)])
    P_test = P[:, :, ::-1].copy()  # the test: every clip's scores on another label, each model its own
    P_test[0] = np.roll(P_test[0], 1, axis=1)
    check = blend.shift_check(P, P_test, 1.25)
    assert 0.6 < check.disagreement_oof and check.ratio > 1.25  # as the tiny demo's first epoch made them
    assert not check.conclusive and not check.shifted and "inconclusive" in check.describe()
    assert (
        blend.fit_blend(blend.Predictions(["a", "b"], P, y, np.arange(len(y)) % 3, P_test),
                        blend.BlendSettings()).chosen_by == "accuracy"  # fmt: skip
    )


def test_the_shift_check_needs_two_models():
    rng = np.random.default_rng(6)
    y = _mix(rng, 600, 0.6)
    P = noisy_model(y, rng, 2.0)[None]
    lone = blend.fit_blend(blend.Predictions(["a"], P, y, np.arange(len(y)) % 3, P), blend.BlendSettings())
    assert not lone.shift.shifted and lone.chosen_by == "accuracy" and "needs two models" in lone.shift.describe()


@pytest.mark.parametrize("n_folds, em_start", [(5, "calibrated"), (5, "trained"), (2, "calibrated")])
def test_a_folds_pseudo_label_blend_is_chosen_and_corrected_without_that_folds_labels(n_folds, em_start):
    """The default path (method auto, EM): fold k's table must be the same whatever fold k's labels are —
    the candidate is chosen by a CV of the other folds (fitted candidates cross-validated within them),
    and EM starts from their label mix. Scrambling fold k's labels changes the blend of all folds (its
    choice here), and leaves fold k's table alone. With two folds, the fitted candidates are left out
    of the fold-wise choice: one other fold cannot cross-validate them."""
    rng = np.random.default_rng(11)
    y = rng.integers(0, C, 2000)
    folds = np.arange(len(y)) % n_folds
    # Three models; the third is good on fold 0's rows only, so the choice over all folds differs from
    # the choice over the others.
    P = np.stack([noisy_model(y, rng, 1.6), noisy_model(y, rng, 1.7), noisy_model(y, rng, 0.3)])
    P[2, folds == 0] = noisy_model(y[folds == 0], rng, 6.0)
    fold_tests = {k: P[:, :80] * rng.uniform(0.5, 1.5, (3, 80, 1)) for k in range(n_folds)}
    trained = {name: np.full(C, 1 / C) for name in "abc"}
    settings = blend.BlendSettings(prior_correction="em", em_start=em_start)
    before = blend.fit_blend(blend.Predictions(list("abc"), P, y, folds, P[:, :80], fold_tests, trained), settings)
    y_scrambled = y.copy()
    y_scrambled[folds == 0] = np.roll(y[folds == 0], 1)  # fold 0's labels, each moved to another row
    after = blend.fit_blend(blend.Predictions(list("abc"), P, y_scrambled, folds, P[:, :80], fold_tests, trained),
                            settings)  # fmt: skip
    np.testing.assert_allclose(after.fold_tests[0], before.fold_tests[0], rtol=1e-9, atol=1e-12)
    assert before.chosen != after.chosen or not np.allclose(before.test, after.test)  # the all-folds blend moved
    assert not np.allclose(after.fold_tests[1], before.fold_tests[1])  # fold 1's table uses fold 0's rows
    assert before.fold_choices[0] != before.fold_choices[1]
    if n_folds == 2:
        assert "left out: one other fold cannot cross-validate them" in before.fold_choices[0]
        assert before.fold_choices[0].split(":")[0] in ("a", "b", "c", "mean")


def test_a_candidate_registered_once_is_allowed_fitted_scored_and_ranked_by_its_complexity(oof, monkeypatch):
    """The registry is the one place a candidate is declared: a new one (the median of the models,
    fitting nothing) is then a valid setting, cross-validated and scored like the others, and ``auto``
    ranks it by its declared complexity; the multi-label policy follows its declaration."""
    from wavefold.blend.candidates import REGISTRY, Candidate
    from wavefold.settings import check

    median = Candidate("median", 0, lambda P, y, settings: None, lambda state, P, single_label: blend.normalise(
        np.median(P, 0)), fits=False, weights=False, single_label_only="a stand-in reason")  # fmt: skip
    monkeypatch.setitem(REGISTRY, "median", median)
    assert check(blend.BlendSettings, {"candidates": ["median", "mean"]}, "blend") == []
    assert check(blend.BlendSettings, {"candidates": ["mode"]}, "blend")  # what is not registered is refused
    P, y, folds = oof
    result = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y, folds, P[:, :50]),
                             blend.BlendSettings(candidates=("median", "logloss")))  # fmt: skip
    table = result.candidates.set_index("candidate")
    assert table.loc["median", "kind"] == "blend" and "median" not in result.weights.columns
    assert np.allclose(result.candidate_tests["median"], blend.normalise(np.median(P[:, :50], 0)))
    # Complexity 0, below every model and weights: with no noise allowed it wins ties only; with a
    # wide allowance, any candidate within it loses to the median.
    wide = blend.fit_blend(blend.Predictions(["a", "b", "c"], P, y, folds, P[:, :50]),
                           blend.BlendSettings(candidates=("median", "logloss"), choice_noise_se=1e6))  # fmt: skip
    assert wide.chosen == "median"
    kept = blend.multi_label_settings(blend.BlendSettings(candidates=("median", "mean")))
    assert kept.candidates == ("mean",)
