# The Python of the Snakemake layer: config validation, constants, path helpers, input and params
# functions. No rules here.

import sys
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
sys.path.insert(0, str(PACKAGE.parent))
from wavefold.provenance import git_commit  # noqa: E402 - the package lives beside the workflow

GIT_COMMIT = git_commit(workflow.basedir)  # provenance and submission descriptions name it


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
# Round 1 trains on the labelled clips; every later round also on the previous round's pseudo-labels.
PSEUDO = config["pseudo_label"]
ROUNDS = list(range(1, PSEUDO["rounds"] + 1))
FINAL_ROUND = ROUNDS[-1]
BLEND = config["blend"]
if set(BLEND["external"]) & set(TRAINING["models"]):
    raise ValueError(
        f"blend.external names {sorted(set(BLEND['external']) & set(TRAINING['models']))}, which are also "
        f"models under training.models: give a teammate's predictions a name of their own."
    )

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
    changing one model's settings re-trains that model only. The pseudo-label mix is a setting of
    rounds > 1 only, so changing it leaves round 1 alone."""
    settings = _merged(TRAINING["defaults"], TRAINING["models"][wildcards.model])
    if int(wildcards.round) > 1:
        settings.update(pseudo_share=PSEUDO["share"], pseudo_noise=PSEUDO["silence_as_noise"])
    return settings


def get_pseudo_training_input(wildcards):
    """From round 2 on, a training job also reads the previous round's pseudo-labels and the test audio."""
    if int(wildcards.round) == 1:
        return {}
    return {
        "pseudo": f"results/pseudo/round{int(wildcards.round) - 1}/pseudo.csv",
        "test_clips": "results/cache/test.npy",
    }


def get_pseudo_settings():
    """What selects the pseudo-labels (not how many rounds, not the mix: those do not change the selection)."""
    return {key: PSEUDO[key] for key in ("threshold", "agreement", "class_cap")}


def get_training_runtime(wildcards, attempt):
    """Minutes for a training job; a retry after a time limit gets more (and resumes its checkpoint)."""
    return TRAINING["runtime_minutes"] * attempt


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


# ----------------------------------------------------------------------------- blend, submission
def get_blend_input(wildcards):
    """Every model's OOF tables (one per fold) and averaged test table, and a teammate's predictions."""
    files = {}
    for model in MODELS:
        files[f"oof_{model}"] = expand(
            "results/train/round{round}/{model}/fold{fold}/oof.csv",
            round=wildcards.round,
            model=model,
            fold=FOLDS,
        )
        files[f"test_{model}"] = f"results/predict/round{wildcards.round}/{model}.csv"
    for name, paths in BLEND["external"].items():
        files[f"external_oof_{name}"] = paths["oof"]
        files[f"external_test_{name}"] = paths["test"]
    return files


def get_blend_settings():
    return {key: value for key, value in BLEND.items() if key != "external"}


def get_round_test_predictions(wildcards):
    return expand("results/predict/round{round}/{model}.csv", round=wildcards.round, model=MODELS)


# Where 'snakemake submit' goes: the demo has no Kaggle leaderboard, so its own hidden solution scores it.
SUBMIT_TO = config["submit"]["to"]
if SUBMIT_TO == "auto":
    SUBMIT_TO = "local" if SOURCE == "demo" else "kaggle"
if SUBMIT_TO == "local" and SOURCE != "demo":
    raise ValueError("submit.to: local needs the demo's hidden solution; set source: demo or submit.to: kaggle")
SUBMISSIONS_LOG = "results/submissions.csv"  # appended by every submit: the history the report shows


def get_submit_input(wildcards):
    return {"solution": f"{RESOURCES}/solution.csv"} if SUBMIT_TO == "local" else {}


def get_report_extras(wildcards):
    """The demo's local score and, once something was submitted, the submission history."""
    extras = {}
    if SOURCE == "demo":
        extras["local_score"] = "results/submission/local_score.json"
    if Path(SUBMISSIONS_LOG).is_file():
        extras["submissions"] = SUBMISSIONS_LOG
    return extras
