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
    # How hard to try is not part of what is downloaded: read from the config, not params, so that
    # changing it re-runs nothing.
    kaggle = snakemake.config["kaggle"]
    sources.retrieve(params.source, competition, out_dir, demo_zip, kaggle["retries"], kaggle["backoff_seconds"])
