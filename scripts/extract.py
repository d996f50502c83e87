"""Rule extract: unpack the archives and check that the layout is the competition's."""

from pathlib import Path

from wavefold import competitions, sources
from wavefold.steps import rule_step

with rule_step(snakemake, "extract") as log:
    downloaded = Path(snakemake.input.archives[0]).parent
    root = Path(snakemake.output.root)
    sources.extract(downloaded, root, competitions.get(snakemake.params.competition))
    log.info("extracted into %s", root)
