"""Rule blend: fit the blend on one round's out-of-fold probabilities, apply it to the test probabilities."""

import json
from pathlib import Path

import pandas as pd

from wavefold import blend, competitions
from wavefold.settings import from_section
from wavefold.steps import rule_step
from wavefold.tracking import flatten, live
from wavefold.tracking.after import Blend, blend_metrics

with rule_step(snakemake, "blend") as log, live.tracked(live.Context.of(snakemake), f"round{snakemake.wildcards.round}/blend",
                                                       {}, flatten(snakemake.params.settings)) as run:  # fmt: skip
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    settings = from_section(blend.BlendSettings, p.settings, "blend")
    competition = competitions.get(p.competition)
    labels = competition.labels
    oof_paths = {name: list(inp[f"oof_{name}"]) for name in p.models}
    test_paths = {name: inp[f"test_{name}"] for name in p.models}
    fold_test_paths = {name: list(inp[f"fold_test_{name}"]) for name in p.models}
    trained = {name: blend.trained_prior(inp[f"metrics_{name}"], labels) for name in p.models}
    for name in p.external:  # a teammate's predictions, in the same format
        oof_paths[name], test_paths[name] = [inp[f"external_oof_{name}"]], inp[f"external_test_{name}"]
        log.warning("%s joins the fold-wise blends (pseudo-labels) with its one test table: if it was trained "
                    "on all labelled clips, it has seen every fold", name)  # fmt: skip
    truth = blend.truth_table(pd.read_csv(inp.folds), pd.read_csv(inp.silence))
    fnames = pd.read_csv(inp.test_index)["fname"].tolist()
    result, oof, test = blend.blend_tables(oof_paths, test_paths, truth, fnames, settings, labels, fold_test_paths,
                                           trained, blend.competition_metric(competition),
                                           competition.multi_label)  # fmt: skip
    oof.to_csv(out.oof, index=False, float_format="%.6g")
    test.to_csv(out.test, index=False, float_format="%.6g")
    for fold, path in zip(p.folds, out.fold_tests):
        blend.fold_table(result, fold, fnames).to_csv(path, index=False, float_format="%.6g")
    result.candidates.to_csv(out.candidates, index=False, float_format="%.5f")
    # Each candidate's test predictions as one column the local score reads (the submission's labels;
    # a multi-label competition's, every label ranked)
    blend.candidate_labels(result, fnames, competition.candidate_column).to_csv(out.candidate_labels, index=False)
    result.weights.to_csv(out.weights, index=False, float_format="%.5f")
    Path(out.recipe).write_text(json.dumps({**result.recipe, "round": int(snakemake.wildcards.round)}, indent=1))
    log.info("candidates (CV over the folds; fitted blends cross-validated):\n%s", result.candidates.to_string())
    log.info("weights:\n%s", result.weights.to_string())
    result.shift.table().to_csv(out.shift, index=False, float_format="%.4f")
    if result.shift.shifted:
        log.warning("shift check: %s. The CV overstates the test score. Ranked by %s (blend.choose_by = %s); "
                    "a test set recorded elsewhere may also want config/shifted-test.yaml (AdaBN, README)",
                    result.shift.describe(), result.chosen_by, settings.choose_by)  # fmt: skip
    else:
        log.info("shift check: %s", result.shift.describe())
    log.info("chosen: %s", result.reason)
    for fold, reason in result.fold_choices.items():
        log.info("fold %d's pseudo-label blend (chosen and fitted without fold %d's labels): %s", fold, fold, reason)
    mix = blend.label_mix(result)
    mix.to_csv(out.label_mix, index=False, float_format="%.4f")
    held = blend.em_held_back(result)
    if held["down"] or held["up"]:
        log.warning("EM's estimate of the test mix was held at its bound (blend.em_max_ratio = %g): held down "
                    "for %s, held up for %s (columns em_estimate and em_unbounded of %s). Under a shift of "
                    "audio, unfamiliar clips look like the classes unbounded EM inflates", settings.em_max_ratio,
                    ", ".join(held["down"]) or "none", ", ".join(held["up"]) or "none", out.label_mix)  # fmt: skip
    if result.mix_weights is not None:
        log.info("labels matched to the probabilities' own mix (blend.match_mix); class weights: %s. CV of the "
                 "chosen blend: %.4f by argmax, %.4f with its OOF matched the same way",
                 dict(zip(mix["label"], result.mix_weights.round(3))),
                 result.candidates.loc[result.candidates["chosen"], "accuracy"].item(),
                 result.matched_oof_accuracy)  # fmt: skip
    log.info("test label mix (predicted: after prior correction and matching, if on):\n%s",
             mix.round(3).to_string(index=False))  # fmt: skip
    values, tags = blend_metrics(Blend(int(snakemake.wildcards.round), out.candidates, out.shift), competition.metric_name)
    run.log(values, tags, outputs=[out.candidates])
