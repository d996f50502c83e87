# The Python of the Snakemake layer: config validation, constants, path helpers, input and params
# functions. No rules here.

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml
from snakemake.utils import validate

PACKAGE = Path(workflow.basedir) / "scripts" / "wavefold"
sys.path.insert(0, str(PACKAGE.parent))
# The package lives beside the workflow; these modules import nothing heavy (no torch): parsing stays fast.
from wavefold import competitions, dependencies, rounds, weights  # noqa: E402
from wavefold.pseudo import PseudoSettings  # noqa: E402
from wavefold.provenance import git_commit  # noqa: E402
from wavefold.settings import SettingsError, coerce_cli_strings  # noqa: E402
from wavefold.settings import workflow as workflow_settings  # noqa: E402
from wavefold.settings.training import resolved  # noqa: E402
from wavefold.tracking import TrackingSettings  # noqa: E402
from wavefold.tracking import live as live_tracking  # noqa: E402

# Nested --config values arrive as strings ('{n_folds: 10}' gives '10'): read them as the schema's types.
_SCHEMA = yaml.safe_load((Path(workflow.basedir) / "config" / "schema.yaml").read_text())
config.update(coerce_cli_strings(dict(config), _SCHEMA))
validate(config, schema="../config/schema.yaml")

SOURCE = config["source"]
COMPETITION = config["competition"]
try:
    # What is specific to the competition (its files, labels, submission format, metric, demo) is
    # data that every step is given: its module, loaded by name.
    COMPETITION_INFO = competitions.get(COMPETITION)
except competitions.UnknownCompetition as error:
    raise SettingsError(str(error)) from None
COMPETITION_CODE = competitions.module_file(COMPETITION)  # the code every step that loads it runs
SEED = config["seed"]

# What was retrieved lives under resources/<dataset>/: the demo's name says its size, shift and seed,
# so that different demos never overwrite each other (the mild shift keeps the original name).
if SOURCE == "demo":
    SHIFT_TAG = "" if config["demo"]["shift"] == "mild" else f"-{config['demo']['shift']}"
    DATASET = f"demo-{config['demo']['size']}{SHIFT_TAG}-seed{SEED}"
else:
    DATASET = COMPETITION
RESOURCES = f"resources/{DATASET}"
ARCHIVES = [f"{RESOURCES}/{name}" for name in COMPETITION_INFO.download_files]

GIT_COMMIT = git_commit(workflow.basedir)  # provenance and submission descriptions name it


wildcard_constraints:
    round=r"\d+",
    fold=r"\d+",
    model=r"[A-Za-z0-9_]+",
    backbone=r"[A-Za-z0-9_.\-]+",  # timm's names: tf_efficientnetv2_s.in21k_ft_in1k


def rule_code(script):
    """The package modules a rule's script runs (read from its imports), as inputs: Snakemake does not
    follow imports, so this is what re-runs the rule when one of them is edited. A script that loads
    the competition runs its module too (and only the selected competition's)."""
    script_file = Path(workflow.basedir) / "scripts" / f"{script}.py"
    return dependencies.script_modules(script_file, COMPETITION_CODE, observers=script == "track")


def get_demo_code():
    """The demo step runs the competition's demo generator too (loaded by name, so not an import)."""
    return rule_code("demo_competition") + [str(competitions.demo_module_file(COMPETITION))]


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


# The audio format every clip is brought to: the competition's own (its clip-length policy), with
# what the config sets (not null) laid over it.
AUDIO = {**COMPETITION_INFO.audio_defaults, **{k: v for k, v in config["audio"].items() if v is not None}}
CLIP_SAMPLES = int(round(AUDIO["sample_rate"] * AUDIO["clip_seconds"]))


def get_audio_policy():
    """The audio settings, as the params of every step that reads audio."""
    return dict(AUDIO)


# ----------------------------------------------------------------------------- training
TRAINING = config["training"]
MODELS = TRAINING["run"]
FOLDS = list(range(config["folds"]["n_folds"]))
# Round 1 trains on the labelled clips; every later round also on the previous round's pseudo-labels.
PSEUDO = config["pseudo_label"]
ROUNDS = list(range(1, PSEUDO["rounds"] + 1))
BLEND = config["blend"]


# Every problem of the training and blend settings at once, each naming its key path: a typo fails
# in seconds, before any job runs (wavefold.settings.workflow, unit-tested).
_problems = workflow_settings.problems(config, COMPETITION_INFO, AUDIO["sample_rate"])
if _problems:
    raise SettingsError("invalid settings:\n  - " + "\n  - ".join(_problems))


# Each model's pretrained weights (params.pretrained). Those of the models that run (and the tuned
# one) are checked now, a file loaded into its backbone once (wavefold.weights; the verdict is kept),
# so that a missing or wrong file fails before any job runs.
WEIGHTS = {
    model: weights.of_model(
        workflow_settings.merged(TRAINING["defaults"], TRAINING["models"][model]),
        f"training.models.{model}.params.pretrained",
    )
    for model in TRAINING["models"]
}
_used = [m for m in {*MODELS, config["tune"]["model"]} if WEIGHTS.get(m)]
_problems = [problem for model in sorted(_used) for problem in weights.problems(WEIGHTS[model])]
if _problems:
    raise SettingsError("invalid weights:\n  - " + "\n  - ".join(_problems))
# A file's content is part of its model's training jobs' identity: a changed file re-trains them.
# (Weights fetch_weights makes re-train through its output's time, as any input.)
WEIGHTS_HASH = {m: weights.content_hash(WEIGHTS[m].path) for m in _used if not WEIGHTS[m].fetched}


def get_model_settings(wildcards):
    """One model's complete training settings, as plain values: the params of its jobs, so that
    changing one model's settings re-trains that model only. The pseudo-label mix is a setting of
    rounds > 1 only, so changing it leaves round 1 alone."""
    settings = workflow_settings.merged(TRAINING["defaults"], TRAINING["models"][wildcards.model])
    # The mel filters and the augmentation's rooms and bands work at the rate the audio is cached at.
    settings["features"] = {**settings.get("features", {}), "sample_rate": AUDIO["sample_rate"]}
    if int(wildcards.round) > 1:
        settings.update(
            pseudo_share=PSEUDO["share"], pseudo_noise=PSEUDO["silence_as_noise"], pseudo_soft=PSEUDO["soft"]
        )
    if WEIGHTS[wildcards.model] is not None:  # the file the job loads (timm's: fetch_weights makes it)
        settings["params"] = {**settings["params"], "pretrained": WEIGHTS[wildcards.model].path}
    return resolved(settings)  # every default filled in: a changed default re-trains too


def get_weights_input(wildcards):
    """A model's pretrained weights file, if it has one: an input of its training jobs."""
    found = WEIGHTS[wildcards.model]
    return {"weights": found.path} if found else {}


def get_weights_hash(wildcards):
    return WEIGHTS_HASH.get(wildcards.model)


def get_pseudo_training_input(wildcards):
    """From round 2 on, a training job also reads the test audio and the previous round's
    pseudo-labels for its own fold: made by models that never saw this fold's labels."""
    if int(wildcards.round) == 1:
        return {}
    return {
        "pseudo": expand(rules.pseudo_label.output.folds[int(wildcards.fold)], round=int(wildcards.round) - 1)[0],
        "test_clips": rules.cache_audio.output.test,
        "test_index": rules.index.output.test,
    }


def get_pseudo_settings():
    """What selects the pseudo-labels (not how many rounds, not the mix: those do not change the selection)."""
    return {field: PSEUDO[field] for field in PseudoSettings.__dataclass_fields__}


def get_training_runtime(wildcards, attempt):
    """Minutes for a training job; a retry after a time limit gets more (and resumes its checkpoint)."""
    return TRAINING["runtime_minutes"] * attempt


def _model_code(script, model):
    architecture = TRAINING["models"][model]["architecture"]
    return dependencies.model_modules(
        Path(workflow.basedir) / "scripts" / f"{script}.py", architecture, COMPETITION_CODE
    )


def get_training_code(wildcards):
    """The modules a model's training job runs: what its script imports, and of the architectures
    only the model's own, so that editing one architecture re-trains only the models built on it."""
    return _model_code("train", wildcards.model)


def get_prediction_code(wildcards):
    return _model_code("predict_test", wildcards.model)


def get_fold_predictions(wildcards):
    return expand(rules.predict_test.output[0], round=wildcards.round, model=wildcards.model, fold=FOLDS)


def _round_files(pattern, round_, models=None):
    return expand(pattern, round=round_, model=MODELS if models is None else models, fold=FOLDS)


def get_round_oof_files(wildcards):
    """Every OOF table of a round: one per model and fold."""
    return _round_files(rules.train.output.oof, wildcards.round)


# ----------------------------------------------------------------------------- blend, pseudo-labels
def get_blend_members(wildcards):
    """The models a round's blend takes (blend.across_rounds: earlier rounds' too, as <model>_round<q>)."""
    return list(rounds.blend_members(MODELS, wildcards.round, BLEND["across_rounds"]))


def get_blend_input(wildcards):
    """Per model of the blend (get_blend_members): its OOF tables and metrics (one per fold), its test
    table (the mean of its folds) and each fold model's test table (for the fold-wise blends that make
    leak-free pseudo-labels); a teammate's predictions."""
    files = {}
    for member, (round_, model) in rounds.blend_members(MODELS, wildcards.round, BLEND["across_rounds"]).items():
        files[f"oof_{member}"] = _round_files(rules.train.output.oof, round_, [model])
        files[f"metrics_{member}"] = _round_files(rules.train.output.metrics, round_, [model])
        files[f"test_{member}"] = expand(rules.average_folds.output[0], round=round_, model=model)[0]
        files[f"fold_test_{member}"] = _round_files(rules.predict_test.output[0], round_, [model])
    for name, paths in BLEND["external"].items():
        files[f"external_oof_{name}"] = paths["oof"]
        files[f"external_test_{name}"] = paths["test"]
    return files


def get_blend_settings():
    """What a blend is fitted by; the rest (final_round, across_rounds, external) is left out, so that
    changing it re-blends only what it changes."""
    return workflow_settings.blend_fit_settings(BLEND)


def get_final_round_input(wildcards):
    """Every round's blend: its OOF and test tables, candidates, label mix and shift check."""
    tables = ("oof", "test", "candidates", "label_mix", "shift", "recipe")
    return {name: expand(rules.blend.output[name], round=ROUNDS) for name in tables}


def get_pseudo_label_input(wildcards):
    """Per fold: the round's blend fitted without that fold, and every model's fold-model predictions."""
    files = {"blends": expand(rules.blend.output.fold_tests, round=wildcards.round)}
    for model in MODELS:
        files[f"models_{model}"] = _round_files(rules.predict_test.output[0], wildcards.round, [model])
    return files


def get_local_score_input(wildcards):
    """Every round's candidates and test tables, scored against the demo's hidden solution beside their CV."""
    return {
        "candidates": expand(rules.blend.output.candidates, round=ROUNDS),
        "candidate_labels": expand(rules.blend.output.candidate_labels, round=ROUNDS),
        "label_mix": rules.final_round.output.label_mix,
        "rounds": rules.final_round.output.rounds,
    }


# ----------------------------------------------------------------------------- code competitions
KERNEL = config["kernel"]
# How the submission reaches Kaggle: an uploaded file, or a notebook Kaggle runs on the hidden test
# (a code competition's only way). auto: what the competition takes.
SUBMIT_KIND = config["submit"]["kind"]
if SUBMIT_KIND == "auto":
    SUBMIT_KIND = "file" if COMPETITION_INFO.submits_by_api else "notebook"
if SUBMIT_KIND == "file" and not COMPETITION_INFO.submits_by_api:
    raise SettingsError(
        f"submit.kind: file — {COMPETITION} is a code competition: Kaggle scores only a notebook "
        "it runs on the hidden test. Set submit.kind: notebook (or auto)"
    )


def kernel_settings(*keys):
    """The kernel settings a notebook step uses, as its params: changing another re-runs nothing of it."""
    return {key: KERNEL[key] for key in keys}


def get_export_input(wildcards):
    """Every fold model of every round (the final round and its blend's members are known only once
    the blend has run: the export takes the ones the final blend needs)."""
    return {"models": expand(rules.train.output.model, round=ROUNDS, model=MODELS, fold=FOLDS)}


# Where 'snakemake submit' goes: the demo has no Kaggle leaderboard, so its own hidden solution scores it.
SUBMIT_TO = config["submit"]["to"]
if SUBMIT_TO == "auto":
    SUBMIT_TO = "local" if SOURCE == "demo" else "kaggle"
if SUBMIT_TO == "local" and SOURCE != "demo":
    raise ValueError("submit.to: local needs the demo's hidden solution; set source: demo or submit.to: kaggle")
SUBMISSIONS_LOG = "results/submissions.csv"  # every submission, appended by the submit rule (its update() output)


def get_submit_input(wildcards):
    """The demo's hidden solution (the local scorer); for a notebook, the package, once rehearsed."""
    files = {"solution": f"{RESOURCES}/solution.csv"} if SUBMIT_TO == "local" else {}
    if SUBMIT_KIND == "notebook":
        files.update(
            dataset=rules.package.output.dataset,
            notebook=rules.package.output.notebook,
            rehearsal=rules.rehearse.output.submission,
            rehearsed=rules.rehearse.output.summary,
        )
    return files


# ----------------------------------------------------------------------------- tuning
TUNE = config["tune"]
if TUNE["model"] not in TRAINING["models"]:
    raise SettingsError(
        f"tune.model: {TUNE['model']!r} is not a model under training.models "
        f"(one of {', '.join(TRAINING['models'])})"
    )
if TUNE["fold"] >= len(FOLDS):
    raise SettingsError(
        f"tune.fold: {TUNE['fold']} does not exist with folds.n_folds: {len(FOLDS)} (0 to {len(FOLDS) - 1})"
    )


def get_tuning_code():
    return _model_code("tune", TUNE["model"])


def get_tuning_weights():
    """The tuned model's weights file; when tune chooses among backbones (tune.space's params.name),
    timm's weights of every choice (a file of one backbone cannot follow the choice: refused here)."""
    own = get_weights_input(SimpleNamespace(model=TUNE["model"]))
    backbones = (TUNE["space"].get("params.name") or {}).get("choices")
    if not own or not backbones:
        return own
    if not WEIGHTS[TUNE["model"]].fetched:
        raise SettingsError(
            f"tune.space.params.name: {WEIGHTS[TUNE['model']].setting} is a file, the weights of one "
            "backbone, so tune cannot choose among backbones with it: set it to timm (each choice's "
            "weights fetched) or none"
        )
    return {f"weights_{n}": str(weights.fetched_path(b)) for n, b in enumerate(backbones)}


# ----------------------------------------------------------------------------- tracking
TRACKING = config["tracking"]
if TRACKING["mlflow"]:
    # Every job of this invocation logs under one parent run (README, "Tracking"): the jobs inherit its name.
    live_tracking.mark_invocation(os.environ, GIT_COMMIT, DATASET)


def end_tracked_invocation(status):
    """End the invocation's parent run (onsuccess/onerror), if a job made one."""
    if TRACKING["mlflow"]:
        live_tracking.end_invocation(live_tracking.Context(TrackingSettings(**TRACKING), config), status)


def get_tracking_jobs():
    """Every training job of the run, in the order of get_tracking_input's curves: its round, model,
    fold and complete settings."""
    return [
        {"round": r, "model": m, "fold": f, "settings": get_model_settings(SimpleNamespace(round=r, model=m))}
        for r in ROUNDS
        for m in MODELS
        for f in FOLDS
    ]


def get_tracking_input(wildcards):
    jobs = get_tracking_jobs()
    files = {
        name: [expand(rules.train.output[kind], round=j["round"], model=j["model"], fold=j["fold"])[0] for j in jobs]
        for name, kind in (("curves", "curve"), ("metrics", "metrics"), ("oofs", "oof"))
    }
    files.update(
        candidates=expand(rules.blend.output.candidates, round=ROUNDS),
        shifts=expand(rules.blend.output.shift, round=ROUNDS),
        rounds=rules.final_round.output.rounds,
    )
    if SOURCE == "demo":
        files["local_scores"] = rules.score_local.output.table
    return files


def get_provenance_input(wildcards):
    """The demo's manifest: which espeak-ng spoke it."""
    return {"demo_manifest": f"{RESOURCES}/manifest.json"} if SOURCE == "demo" else {}


def get_report_extras(wildcards):
    """The demo's local score."""
    return {"local_score": rules.score_local.output.score} if SOURCE == "demo" else {}
