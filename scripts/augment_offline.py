"""Rule augment: render the offline variants (speed, pitch, stretch) of every training clip."""

import numpy as np

from wavefold import offline_augment
from wavefold.steps import rule_step

with rule_step(snakemake, "augment") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    settings = offline_augment.OfflineSettings.from_config(p.settings)
    n_clips = len(np.load(inp.clips, mmap_mode="r"))
    plan = offline_augment.plan_variants(n_clips, settings, p.seed)
    offline_augment.write_variants(inp.clips, plan, out.variants, p.sample_rate, snakemake.threads)
    plan.to_csv(out.table, index=False)
    log.info("%d variants of %d clips", len(plan), n_clips)
