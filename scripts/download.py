"""Rule download: the competition's archives from the demo, Kaggle or a local path, verified."""

from pathlib import Path

from wavefold import competitions, sources
from wavefold.steps import rule_step

with rule_step(snakemake, "download") as log:
    params = snakemake.params
    out_dir = Path(snakemake.output.archives[0]).parent
    demo_zip = Path(snakemake.input.demo_zip) if params.source == "demo" else None
    log.info("source: %s", params.source)
    competition = competitions.get(params.competition)
    sources.retrieve(params.source, competition, out_dir, demo_zip, params.retries, params.backoff_seconds)
