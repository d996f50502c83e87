"""Rule fetch_weights: timm's pretrained weights for one backbone, saved as a file the jobs load."""

from pathlib import Path

from wavefold.steps import rule_step
from wavefold.weights import content_hash, fetch

with rule_step(snakemake, "fetch_weights") as log:
    name, out = snakemake.wildcards.backbone, Path(snakemake.output[0])
    source = fetch(name, out)
    log.info("timm's weights of %s, from %s: %s (%.1f MB, sha256 %s)", name, source or "timm", out,
             out.stat().st_size / 1e6, content_hash(out))  # fmt: skip
