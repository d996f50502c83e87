"""Each rule's code inputs are what its script imports, so an edited module re-runs exactly its steps."""

from conftest import REPO
from wavefold import dependencies

SCRIPTS = REPO / "scripts"


def names(paths):
    return {str(p).split("scripts/wavefold/")[1] for p in paths}


def test_a_scripts_modules_follow_its_imports():
    train = names(dependencies.model_modules(SCRIPTS / "train.py", "m5"))
    # What the hand-kept list missed: labels.py and settings.py (reordering LABELS re-trains now).
    assert {"labels.py", "settings.py", "training/loop.py", "training/settings.py", "augment.py", "features.py"} <= train
    assert "architectures/m5.py" in train and "architectures/lenet.py" not in train  # only its own architecture
    predict = names(dependencies.model_modules(SCRIPTS / "predict_test.py", "lenet"))
    assert "training/classifier.py" in predict and "training/loop.py" not in predict
    blend = names(dependencies.script_modules(SCRIPTS / "blend.py"))
    assert {"blend.py", "labels.py", "steps.py", "errors.py"} <= blend and "submit.py" not in blend
    assert "labels.py" in names(dependencies.script_modules(SCRIPTS / "folds.py"))
