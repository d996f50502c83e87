"""Rule package: the Kaggle Dataset (models, recipe, portable code, wheels) and the notebook folder."""

import json
from pathlib import Path

import pandas as pd

from wavefold import competitions
from wavefold.audio import AudioPolicy
from wavefold.kernel import package
from wavefold.steps import rule_step
from wavefold.training.inference import shifts_in_samples

with rule_step(snakemake, "package") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    competition, settings = competitions.get(p.competition), package.KernelSettings.from_config(p.settings)
    policy = AudioPolicy.from_config(p.audio)
    blend = json.loads(Path(inp.recipe).read_text())
    exported = pd.read_csv(inp.table)
    inputs = {row.member: json.loads(row.input) for row in exported.itertuples()}  # a member's folds share it
    recipe = package.notebook_recipe(blend, competition, package.audio_of(policy),
                                     shifts_in_samples(p.tta_shift_ms, policy.sample_rate), p.folds, settings,
                                     inputs)  # fmt: skip
    package.write_package(Path(out.dataset), Path(out.notebook), recipe, Path(inp.models), Path(inp.wheels),
                          settings, competition)  # fmt: skip
    size = sum(f.stat().st_size for f in Path(out.dataset).rglob("*") if f.is_file())
    log.info("Dataset %s (%.1f MB): %d ONNX models of %s, recipe.json, portable/, %d wheels; notebook %s "
             "(enable_internet false, enable_gpu %s)", settings.dataset_id(competition.slug), size / 1e6,
             sum(len(m["folds"]) for m in recipe["members"]), ", ".join(m["name"] for m in recipe["members"]),
             len(list((Path(out.dataset) / "wheels").glob("*.whl"))), settings.notebook_id(competition.slug),
             settings.enable_gpu)  # fmt: skip
    log.info("the models' CPU time, summed over folds (rule export):\n%s",
             exported.groupby("member")["onnx_ms_per_clip"].sum().to_string())  # fmt: skip
