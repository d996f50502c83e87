"""Rule tune: Optuna's TPE over one model's settings on a proxy (one fold, few epochs, a share of the
training speakers); writes the trials and the best settings as a config fragment. Resumable."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wavefold import competitions, tuning
from wavefold.devices import DeviceLease, pick_device
from wavefold.settings.training import job_seed
from wavefold.steps import rule_step
from wavefold.tracking import flatten, live
from wavefold.training import data, loop, outputs

with rule_step(snakemake, "tune") as log, DeviceLease():
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    proxy = {"fold": p.fold, "epochs": p.epochs, "train_share": p.train_share}
    dimensions = tuning.parse_space(p.space, p.settings)
    tuning.trial_settings(p.settings, {}, p.epochs)  # the model's own settings must already be valid
    device = pick_device(p.device)
    torch.set_num_threads(snakemake.threads)
    # Every trial trains with the same seed (common random numbers): differences between trials are
    # their settings, not their draws.
    seed = job_seed(p.seed, 1, p.model, p.fold)
    folds = pd.read_csv(inp.folds)
    variant_sources = pd.read_csv(inp.variant_table)["source_row"].to_numpy()
    fold_data = data.load_fold(
        np.load(inp.clips, mmap_mode="r"),
        np.load(inp.noise),
        folds,
        pd.read_csv(inp.silence),
        pd.read_csv(inp.noise_segments),
        p.fold,
        competitions.get(p.competition).label_space(p.settings["label_space"]),
        np.load(inp.variants, mmap_mode="r"),
        variant_sources,
        seed=seed,
    )
    fold_data = tuning.subset_training_side(fold_data, folds["group"], p.train_share, seed)

    name = tuning.study_name(p.model, p.settings, p.space, proxy)
    score = "lwlrap" if fold_data.space.multi_label else "accuracy"  # what train_fold scores a fold by

    def objective(values: dict, number: int) -> float:
        trial_settings = tuning.trial_settings(p.settings, values, p.epochs)
        with tempfile.TemporaryDirectory(prefix="wavefold-tune-") as scratch, \
                live.nested(study_run, f"tune/{p.model}/trial{number}", {"wavefold.kind": "trial",
                            "wavefold.trial": str(number)}, flatten(values)) as trial_run:  # fmt: skip
            scratch = Path(scratch)
            paths = outputs.JobPaths(*(scratch / n for n in ("model.pt", "oof.csv", "curve.csv", "metrics.csv")),
                                     scratch / "checkpoint" / "last.pt")  # fmt: skip
            result = loop.train_fold(fold_data, trial_settings, seed, paths, device, p.fold, "tune",
                                     on_epoch=trial_run.epoch)  # fmt: skip
            trial_run.log({f"fold_{score}": result["fold_score"]})
            return result["fold_score"]  # the held-out fold's accuracy (multi-label: lwlrap)

    study = tuning.open_study(Path(p.storage), name, p.seed)
    study_tags = {"wavefold.kind": "tune", "wavefold.model": p.model, "wavefold.study": name}
    with live.tracked(live.Context.of(snakemake), f"tune/{p.model}", study_tags,
                      flatten({**proxy, "trials": p.trials, "space": p.space})) as study_run:  # fmt: skip
        ran = tuning.run_study(study, dimensions, objective, p.trials)
        if any(t.value is not None for t in study.trials):
            study_run.log({f"best_fold_{score}": study.best_value})
    table = tuning.trials_table(study)
    table.to_csv(out.trials, index=False)
    Path(out.best).write_text(tuning.best_fragment(study, p.model, proxy))
    log.info("%d trials run now, %d in the study; best:\n%s", ran, len(table), Path(out.best).read_text())
