"""Each rule's code inputs are what its script imports, so an edited module re-runs exactly its steps."""

from conftest import REPO
from wavefold import dependencies

SCRIPTS = REPO / "scripts"


def names(paths):
    return {str(p).split("scripts/wavefold/")[1] for p in paths}


SPEECH = REPO / "scripts/wavefold/competitions/tensorflow_speech.py"


def test_a_scripts_modules_follow_its_imports():
    train = names(dependencies.model_modules(SCRIPTS / "train.py", "m5", SPEECH))
    # What a hand-kept list missed: the competition's labels and the settings (reordering the labels re-trains).
    assert {"competitions/tensorflow_speech.py", "settings/__init__.py", "training/loop.py", "settings/training.py",
            "augment.py", "features.py", "metrics.py", "training/sources.py"} <= train  # fmt: skip
    assert "architectures/m5.py" in train and "architectures/lenet.py" not in train  # only its own architecture
    assert "competitions/tensorflow_speech_demo.py" not in train  # only the demo step runs the generator
    predict = names(dependencies.model_modules(SCRIPTS / "predict_test.py", "lenet", SPEECH))
    assert "training/classifier.py" in predict and "training/loop.py" not in predict
    blend = names(dependencies.script_modules(SCRIPTS / "blend.py", SPEECH))
    assert {"blend/fit.py", "blend/candidates.py", "competitions/tensorflow_speech.py", "steps.py", "errors.py"} <= blend
    assert "submit.py" not in blend
    assert "competitions/tensorflow_speech.py" in names(dependencies.script_modules(SCRIPTS / "folds.py", SPEECH))
    # A script that loads no competition does not depend on one.
    averaging = names(dependencies.script_modules(SCRIPTS / "average_folds.py", SPEECH))
    assert not any("competitions" in n for n in averaging)
    # How a job is tracked changes none of its files: editing the tracking re-runs only the track rule.
    assert not any(n.startswith("tracking/") for n in train | blend)
    track = names(dependencies.script_modules(SCRIPTS / "track.py", SPEECH, observers=True))
    assert {"tracking/live.py", "tracking/after.py", "tracking/store.py"} <= track
    # cv_table scores in the competition's metric: it loads the competition.
    assert "competitions/tensorflow_speech.py" in names(dependencies.script_modules(SCRIPTS / "cv_table.py", SPEECH))
