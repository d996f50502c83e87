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


def test_the_import_reader_finds_every_import_ast_finds_in_each_module():
    """The workflow reads imports line by line (fast); a module that imports in a way it misses (after
    ``if x:`` on one line, a backslash) would leave a rule without a code input: every module and rule
    script, read both ways, and a hand-made module with the ways it must read."""
    import ast

    def by_ast(source):
        return sorted(ast.dump(node) for node in ast.walk(ast.parse(source))
                      if isinstance(node, (ast.Import, ast.ImportFrom)))  # fmt: skip

    def by_reader(source):
        return sorted(ast.dump(node) for node in dependencies.import_statements(source))

    files = sorted(SCRIPTS.rglob("*.py"))
    assert len(files) > 80
    for path in files:
        assert by_reader(path.read_text()) == by_ast(path.read_text()), path
    made = '''"""import the docstring's words, not a module
from here import nothing at all
"""
import os, sys  # a comment
from . import a
from .b import (c,  # why
                d)
def f():
    from ..e import g as h
    import wavefold.x.y
'''
    assert by_reader(made) == by_ast(made) and len(by_ast(made)) == 5
    assert dependencies.import_statements("if x: import y\n") == []  # what it cannot read (the check above finds it)
