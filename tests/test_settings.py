"""Settings are checked when the workflow is parsed, before any job runs; one source of defaults."""

import re
import subprocess
import sys
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import pytest
import yaml

from conftest import REPO, output_of
from wavefold.settings import SettingsError, check, coerce_cli_strings
from wavefold.settings.training import AugmentSettings, FeatureSettings, TrainSettings
from wavefold.training import optim

BIN = Path(sys.executable).parent


def imported_by(*modules: str) -> set[str]:
    """Every module a fresh interpreter holds after importing ``modules`` (or running one import statement)."""
    imports = modules[0] if modules[0].startswith("from ") else f"import {', '.join(modules)}"
    code = f"import sys; {imports}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO / "scripts"), "PYTHONDONTWRITEBYTECODE": "1"})  # fmt: skip
    return set(result.stdout.split())


def parse_time_imports() -> list[str]:
    """The package modules rules/common.smk imports when the workflow is parsed (every snakemake call,
    every SLURM job): ``from wavefold[.x] import a, b`` as the statements to run."""
    lines = re.findall(r"^from (wavefold\S*) import ([\w, ]+)", (REPO / "rules/common.smk").read_text(), re.M)
    return [f"from {module} import {names.strip()}" for module, names in lines]


def test_the_settings_lie_below_their_readers():
    """The workflow checks the settings and lists each job's code when it is parsed, loading the
    competition's module: no torch, nor scikit-learn or SciPy (~1.2 s a call) nor MLflow nor py7zr
    (0.1 s). The front end and the augmentation read them without importing the training package,
    which imports those two."""
    from wavefold.competitions import MODULES

    statements = parse_time_imports()
    assert len(statements) >= 5 and any("dependencies" in s for s in statements)
    loaded = [f"__import__('wavefold.competitions').competitions.get({slug!r})" for slug in MODULES]
    parsed = imported_by("; ".join(statements + loaded))
    heavy = {"torch", "sklearn", "scipy", "mlflow", "py7zr"}
    assert not heavy & parsed, heavy & parsed
    below = imported_by("wavefold.features", "wavefold.augment")
    assert "wavefold.settings.training" in below and not any(m.startswith("wavefold.training") for m in below)


def dry_run(tmp_path, *config_args, config=None):
    """A dry run with ``--config`` arguments as a user types them (not a config file)."""
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(REPO / "config/config.yaml"), "--cores", "1", "--dry-run"]  # fmt: skip
    if config_args:
        command += ["--config", *config_args]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.dag
def test_nested_config_overrides_work_as_the_readme_shows(tmp_path):
    result = dry_run(tmp_path, "folds={n_folds: 10}", "demo={size: tiny}")
    assert result.returncode == 0, output_of(result)[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", output_of(result).split("Job stats:")[1], flags=re.M))
    assert counts["train"] == str(10 * 2 * 2)  # folds x the two default models x two rounds


#: Typos and settings that cannot go together, as a user types them, and what the refusal says of each.
#: All in one run: the settings check names every problem at once, not the first one only.
TYPOS = [
    "training={defaults: {epoch: 5, optimizer: adam, patience: 3, unknown_share: 0.5, features: {sample_rate: 22050}},"
    " models: {lenet: {architecture: lenett}, fast: {architecture: lenet, lr: fast},"
    " wide: {architecture: lenet, params: {chanels: [8]}, features: {sample_rate: 8000}}}}",
    "blend={method: stacker}",
]
REFUSALS = [
    "training.defaults.epoch: unknown setting; known: ",
    "training.models.lenet.architecture: 'lenett' is not one of bc_resnet, lenet, m5",
    "training.models.fast.lr: 'fast' is not a number",
    "training.models.wide.params.chanels: lenet takes no such parameter; it takes channels, dropout",
    "training.defaults.optimizer: 'adam' is not adamw | sgd",
    "training.defaults.patience: 3 needs a score to stop on",
    "training.defaults.unknown_share: 0.5 is ignored while balanced",
    "blend.method: 'stacker' is not one of auto, mean, logloss, accuracy, stacking, lenet",
    # One sample rate: the features are computed at the audio cache's.
    "training.defaults.features.sample_rate: the features are computed at the audio cache's rate, "
    "audio.sample_rate (16000 Hz here)",
    "training.models.wide.features.sample_rate: the features are computed at the audio cache's rate",
]


@pytest.mark.dag
def test_typos_fail_at_parse_time_each_named_with_its_key_and_the_allowed_values(tmp_path):
    result = dry_run(tmp_path, *TYPOS)
    assert result.returncode != 0
    for expected in REFUSALS:
        assert expected in output_of(result), (expected, output_of(result)[-3000:])
    assert "Building DAG of jobs" not in output_of(result)  # refused while the workflow was parsed
    assert not (tmp_path / "logs").exists()  # no job ran


def test_config_yaml_shows_the_dataclass_defaults():
    """One source of defaults: config/config.yaml's training.defaults are TrainSettings' own."""
    shown = yaml.safe_load((REPO / "config/config.yaml").read_text())["training"]["defaults"]
    defaults = asdict(TrainSettings(architecture="lenet"))
    features, augment = shown.pop("features"), shown.pop("augment")
    # The features' sample rate is not a training setting: it is the audio cache's (audio.sample_rate).
    assert features == {k: v for k, v in asdict(FeatureSettings()).items() if k != "sample_rate"}
    assert augment == asdict(AugmentSettings())
    for key, value in shown.items():
        assert defaults[key] == value, key
    not_shown = set(defaults) - set(shown) - {"features", "augment"}
    # Set per model, or by the pseudo_label section:
    assert not_shown == {"architecture", "params", "pseudo_share", "pseudo_noise", "pseudo_soft"}


#: Each settings dataclass and the config section whose schema fills its defaults.
SECTIONS = {
    "blend": "wavefold.blend.BlendSettings",
    "pseudo_label": "wavefold.pseudo.PseudoSettings",
    "tracking": "wavefold.tracking.TrackingSettings",
    "offline_augment": "wavefold.offline_augment.OfflineSettings",
    "kernel": "wavefold.kernel.package.KernelSettings",
}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_the_schemas_defaults_are_the_dataclasses(section):
    """The schema fills every key a user leaves out, the dataclass is what the job builds: the two must
    give the same defaults (and the blend's candidates and ranking metrics are its registry's)."""
    import importlib

    from wavefold.blend import CHOOSE_BY, METHODS

    module, name = SECTIONS[section].rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())["properties"][section]["properties"]
    defaults = {f.name: f.default if f.default_factory is MISSING else f.default_factory() for f in fields(cls)}
    for key, value in defaults.items():
        assert key in schema, f"{section}.{key}: a setting the schema does not know"
        shown = schema[key].get("default")
        assert (list(value) if isinstance(value, tuple) else value) == shown, f"{section}.{key}: {value!r} vs {shown!r}"
    if section == "blend":
        assert tuple(schema["candidates"]["default"]) == METHODS and "enum" not in schema["candidates"]["items"]
        assert "enum" not in schema["choose_by"] and set(CHOOSE_BY) == {"auto", "metric", "accuracy", "balanced_accuracy"}


def test_checks_name_every_problem():
    problems = check(TrainSettings, {"architecture": "m5", "epochs": 0, "features": {"n_melz": 3}, "unknown_share": 1.5},
                     "training.models.x")  # fmt: skip
    assert "training.models.x.epochs: 0 must be >= 1" in problems
    assert any(p.startswith("training.models.x.features.n_melz: unknown setting") for p in problems)
    assert "training.models.x.unknown_share: 1.5 must be < 1" in problems
    assert check(TrainSettings, {"architecture": "m5", "unknown_share": None, "balanced": False}, "t") == []
    with pytest.raises(SettingsError, match="training.epochs: 'x' is not an integer"):
        TrainSettings.from_config({"architecture": "m5", "epochs": "x"})


def test_cli_strings_become_the_schema_types():
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    given = {"folds": {"n_folds": "10"}, "source": "123", "training": {"defaults": {"lr": "1e-3", "balanced": "false",
             "unknown_share": "null", "optimizer": "sgd"}}}  # fmt: skip
    coerced = coerce_cli_strings(given, schema)
    assert coerced["folds"]["n_folds"] == 10 and coerced["source"] == "123"  # a path stays a string
    assert coerced["training"]["defaults"] == {"lr": 1e-3, "balanced": False, "unknown_share": None, "optimizer": "sgd"}


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine", "constant"])
@pytest.mark.parametrize("epochs, steps", [(1, 1), (1, 2), (1, 3), (1, 5), (2, 3), (3, 7)])
def test_any_epoch_count_and_data_size_has_a_schedule(scheduler, epochs, steps):
    """Short runs (the tiny demo with epochs: 1 gives OneCycleLR five steps) must train, not crash."""
    import torch

    model = torch.nn.Linear(2, 2)
    settings = TrainSettings(architecture="lenet", epochs=epochs, scheduler=scheduler, lr=0.01)
    opt = optim.optimizer(model, settings)
    schedule = optim.scheduler(opt, settings, steps)
    rates = []
    for _ in range(epochs * steps):
        opt.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert all(0 <= r <= 0.01 + 1e-12 for r in rates)


# --------------------------------------------------------------------------- the whole config, as parsed
def shipped_config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_the_shipped_config_has_no_problems():
    from wavefold import competitions
    from wavefold.settings import workflow

    config = shipped_config()
    assert workflow.problems(config, competitions.get(config["competition"]), 16000) == []


def test_what_one_section_asks_of_another_is_checked_and_named():
    """The checks the schema cannot make, each failing alone with its key path and the fix."""
    from wavefold import competitions
    from wavefold.settings import workflow

    speech, freesound = (competitions.get(slug) for slug in ("tensorflow-speech-recognition-challenge",
                                                              "freesound-audio-tagging"))  # fmt: skip

    def problems_of(edit, competition=speech):
        config = shipped_config()
        edit(config)
        return workflow.problems(config, competition, 16000)

    models = shipped_config()["training"]["models"]
    cases = {
        "training.run: ['res99'] are not under training.models": lambda c: c["training"]["run"].append("res99"),
        "training.defaults.pseudo_share: set by pseudo_label.share": lambda c: c["training"]["defaults"].update(
            pseudo_share=0.2),
        "training.models.lenet.label_space: 'words99' is not one of tensorflow-speech-recognition-challenge's label "
        "spaces (labels, words31)": lambda c: c["training"]["models"]["lenet"].update(label_space="words99"),
        "blend.method: 'median' is not one of auto": lambda c: c["blend"].update(method="median"),
        "blend.candidates: ['median'] of ['mean', 'median'] is not one of accuracy, logloss, mean, stacking":
            lambda c: c["blend"].update(candidates=["mean", "median"]),
        "end in _round<q>": lambda c: c["blend"]["external"].update({"alice_round2": {"oof": "a", "test": "b"}}),
        f"blend.external: ['{next(iter(models))}'] are also models under training.models": lambda c: c["blend"][
            "external"].update({next(iter(models)): {"oof": "a", "test": "b"}}),
    }  # fmt: skip
    for expected, edit in cases.items():
        found = problems_of(edit)
        assert len(found) == 1 and expected in found[0], (expected, found)
    # A competition without a catch-all label takes no unknown_share.
    found = problems_of(lambda c: c["training"]["defaults"].update(unknown_share=0.1, balanced=False), freesound)
    assert any("training.defaults.unknown_share: freesound-audio-tagging has no catch-all" in p for p in found), found
    merged = workflow.merged({"lr": 1, "augment": {"gain_db": 6, "masks": 2}}, {"augment": {"masks": 3}})
    assert merged == {"lr": 1, "augment": {"gain_db": 6, "masks": 3}}
