# The Python of the Snakemake layer: config validation, constants, path helpers, input and params
# functions. No rules here.

from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../config/schema.yaml")

SOURCE = config["source"]
COMPETITION = config["competition"]
SEED = config["seed"]

# What was retrieved lives under resources/<dataset>/: the demo's name says its size and seed, so
# that demos of different sizes never overwrite each other.
if SOURCE == "demo":
    DATASET = f"demo-{config['demo']['size']}-seed{SEED}"
else:
    DATASET = COMPETITION
RESOURCES = f"resources/{DATASET}"
ARCHIVES = [f"{RESOURCES}/{name}" for name in ("train.7z", "test.7z", "sample_submission.7z")]

PACKAGE = Path(workflow.basedir) / "scripts" / "wavefold"


wildcard_constraints:
    round=r"\d+",
    fold=r"\d+",
    model=r"[A-Za-z0-9_]+",


def package_files(*modules):
    """The package modules a step runs, as inputs. Snakemake does not track imports, so editing
    one of these re-runs the rule."""
    return [str(PACKAGE / f"{module}.py") for module in modules]


def get_download_input(wildcards):
    """What the download step reads: the generated demo zip, the user's local archives, or nothing."""
    if SOURCE == "demo":
        return {"demo_zip": f"{RESOURCES}/download/{COMPETITION}.zip"}
    if SOURCE == "kaggle":
        return {}
    path = Path(SOURCE).expanduser()
    if path.is_file():
        return {"local": str(path)}
    if path.is_dir():
        return {"local": sorted(str(p) for p in path.glob("*") if p.suffix in (".zip", ".7z"))}
    return {}  # the download step explains what it expected


def get_audio_policy():
    """The audio settings, as the params of every step that reads audio."""
    return dict(config["audio"])


# ----------------------------------------------------------------------------- training
TRAINING = config["training"]
MODELS = TRAINING["run"]
FOLDS = list(range(config["folds"]["n_folds"]))
ROUNDS = [1]  # pseudo-label rounds join with the pseudo-labelling stage

_unknown_models = [name for name in MODELS if name not in TRAINING["models"]]
if _unknown_models:
    raise ValueError(
        f"training.run names {_unknown_models}, which are not under training.models "
        f"(known: {sorted(TRAINING['models'])}). Add them there or fix the names."
    )


def _merged(defaults, overrides):
    merged = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = {**merged[key], **value}
        merged[key] = value
    return merged


def get_model_settings(wildcards):
    """One model's complete training settings, as plain values: the params of its jobs, so that
    changing one model's settings re-trains that model only."""
    return _merged(TRAINING["defaults"], TRAINING["models"][wildcards.model])


def get_training_code(wildcards):
    """The modules a model's jobs run: the shared ones and its own architecture's module, so that
    editing one architecture re-trains only the models built on it."""
    architecture = TRAINING["models"][wildcards.model]["architecture"]
    shared = package_files(
        "training", "models", "features", "augment", "architectures/__init__", "architectures/blocks"
    )
    return shared + package_files(f"architectures/{architecture}")


def get_fold_predictions(wildcards):
    return expand(
        "results/predict/round{round}/{model}/fold{fold}.csv",
        round=wildcards.round,
        model=wildcards.model,
        fold=FOLDS,
    )


def get_round_training_outputs(wildcards):
    return {
        "oof": expand(
            "results/train/round{round}/{model}/fold{fold}/oof.csv",
            round=wildcards.round,
            model=MODELS,
            fold=FOLDS,
        ),
        "metrics": expand(
            "results/train/round{round}/{model}/fold{fold}/metrics.csv",
            round=wildcards.round,
            model=MODELS,
            fold=FOLDS,
        ),
    }
