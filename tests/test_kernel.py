"""The code competition's notebook (wavefold.kernel.standalone): the blend as data gives the blend's own
test probabilities, the stacker's arithmetic is scikit-learn's, the audio is decoded as the cache holds it."""

import numpy as np
import pytest

from wavefold import blend
from wavefold.kernel import standalone
from wavefold.competitions.tensorflow_speech import LABELS

C = len(LABELS)


def noisy_models(rng, y, skills, temperatures):
    out = []
    for skill, temperature in zip(skills, temperatures):
        logits = rng.normal(0, 1, (len(y), C))
        logits[np.arange(len(y)), y] += skill
        out.append(blend.scale_temperature(logits, temperature, logs=True))
    return np.stack(out)


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(3)
    y = rng.integers(0, C, 1200)
    P = noisy_models(rng, y, (2.0, 2.3, 1.5), (1.0, 0.5, 2.0))
    y_test = rng.integers(0, C, 400)
    y_test[:150] = 11  # a test mix unlike the OOF's: EM and the matching have something to move
    P_test = noisy_models(rng, y_test, (2.0, 2.3, 1.5), (1.0, 0.5, 2.0))
    return blend.Predictions(["a", "b", "c"], P, y, np.arange(len(y)) % 4, P_test, labels=LABELS)


@pytest.mark.parametrize("method", ["a", "mean", "logloss", "accuracy", "stacking"])
@pytest.mark.parametrize("after", ["none", "em_calibrated", "em_trained", "match_mix"])
def test_the_recipe_makes_the_blends_test_probabilities_from_the_members(predictions, method, after):
    """What the notebook applies to the hidden test's member probabilities is what the blend applied to
    the local test's: every combiner, with temperatures, EM from either start, and label-mix matching.
    A recipe that missed a step (the temperatures, EM's calibration, the matching) would differ."""
    settings = blend.BlendSettings(
        method=method, temperature=True, prior_correction="em" if after.startswith("em") else "none",
        em_start="calibrated" if after == "em_calibrated" else "trained", match_mix=after == "match_mix")  # fmt: skip
    result = blend.fit_blend(predictions, settings)
    recipe = result.recipe
    assert recipe["members"] == ["a", "b", "c"] and (recipe["em"] is not None) == after.startswith("em")
    np.testing.assert_allclose(standalone.apply_blend(recipe, predictions.test), result.test, rtol=0, atol=1e-12)
    if method != "a":  # the members' test probabilities changed: the recipe follows them, not a copy of the table
        moved = predictions.test[[2, 0, 1]]
        assert np.abs(standalone.apply_blend(recipe, moved) - result.test).max() > 0.01


def test_the_stackers_arithmetic_is_scikit_learns(predictions):
    model = blend.fit_stacker(predictions.oof[:, :300], predictions.y[:300])
    expected = np.full(predictions.test.shape[1:], standalone.EPS)
    expected[:, model.classes_] = model.predict_proba(standalone.stack_features(predictions.test))
    np.testing.assert_allclose(blend.apply_stacker(model, predictions.test), blend.normalise(expected), atol=1e-10)
    missing = predictions.y[:300] != 4  # a class the stacker never saw gets EPS, and the rows still sum to 1
    sparse = blend.fit_stacker(predictions.oof[:, :300][:, missing], predictions.y[:300][missing])
    out = blend.apply_stacker(sparse, predictions.test)
    assert out[:, 4].max() < 1e-6 and np.allclose(out.sum(1), 1)


def test_the_submission_rows_are_each_competitions_format():
    """Written by hand: the speech challenge's top label, Freesound 2018's three best space-separated
    (ties: the earlier label first), Freesound 2019's score per label — the workflow's and the notebook's."""
    import pandas as pd

    from wavefold import competitions

    speech = competitions.get("tensorflow-speech-recognition-challenge")
    P = np.full((2, 12), 0.05)
    P[0, 3], P[1, 11] = 0.4, 0.3  # down (yes no up down ...); unknown
    assert speech.submission_table(["a.wav", "b.wav"], P).to_dict("list") == {"fname": ["a.wav", "b.wav"],
                                                                              "label": ["down", "unknown"]}  # fmt: skip
    freesound = competitions.get("freesound-audio-tagging")
    P = np.full((1, 41), 0.01)
    P[0, [7, 2, 30]] = [0.2, 0.3, 0.2]  # 7 and 30 tie: 7 first
    labels = freesound.labels
    assert freesound.submission_table(["c.wav"], P)["label"].tolist() == [f"{labels[2]} {labels[7]} {labels[30]}"]
    tagging = competitions.get("freesound-audio-tagging-2019")
    P = np.random.default_rng(0).random((3, 80))
    table = tagging.submission_table(["d.wav", "e.wav", "f.wav"], P)
    assert list(table.columns) == ["fname", *tagging.labels]
    pd.testing.assert_frame_equal(table.drop(columns="fname"), pd.DataFrame(P, columns=list(tagging.labels)))
