"""Rule extract: unpack the archives and check that the layout is the competition's."""

from pathlib import Path

from wavefold import sources
from wavefold.steps import rule_step

with rule_step(snakemake, "extract") as log:
    root = Path(snakemake.input.archives[0]).parent
    sources.extract(root, root)
    log.info("extracted into %s", root)
