"""Rule folds: speaker-grouped stratified folds, fold-owned noise stretches and silence examples."""

import pandas as pd

from wavefold import competitions, folds
from wavefold.steps import rule_step

with rule_step(snakemake, "folds") as log:
    p, out = snakemake.params, snakemake.output
    competition = competitions.get(p.competition)
    train = pd.read_csv(snakemake.input.train)
    noise_table = pd.read_csv(snakemake.input.noise_table)
    # Silence is cut from the background noise, for a competition that scores it
    cuts_silence = competition.silence_label is not None
    multi = competition.multi_label
    folds.check_fold_count(train, noise_table, p.n_folds, p.clip_samples, needs_noise=cuts_silence, multi_label=multi)
    # Row for row the train cache's clips; 'windows': each one's rows in the cache (indexed by the index step).
    table = train[["id", "target", "label", "group", "windows"]].assign(fold=folds.assign_folds(
        train, p.n_folds, p.seed, competition.labels if multi else None))
    # Which clips the CV is scored on: all, unless the competition says some labels are not to be trusted.
    table["scored"] = train["scored"].astype(bool) if "scored" in train.columns else True
    if not table["scored"].all():
        log.info("the CV is scored on the %d of %d clips whose labels are trusted (%s); all of them train",
                 int(table["scored"].sum()), len(table), competition.slug)  # fmt: skip
    segments = folds.noise_segments(noise_table, p.n_folds, p.clip_samples)
    per_fold = folds.silence_per_fold(table["fold"].value_counts().sort_index(), p.silence_share if cuts_silence else 0)
    silence = folds.silence_clips(segments, per_fold, p.clip_samples, p.seed, competition.silence_label)
    folds.check_no_leakage(table, segments, silence, p.clip_samples)
    summary = folds.summary(table, silence, competition.labels, multi)
    table.to_csv(out.folds, index=False)
    silence.to_csv(out.silence, index=False)
    segments.to_csv(out.noise_segments, index=False)
    summary.to_csv(out.summary)
    log.info("fold summary (clips per label, speakers):\n%s", summary.to_string())
