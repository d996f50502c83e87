"""Rule demo_competition: generate the synthetic competition's download zip and hidden solution."""

from pathlib import Path

from wavefold import competitions
from wavefold.steps import rule_step

with rule_step(snakemake, "demo_competition") as log:
    zip_path = Path(snakemake.output.zip)
    p = snakemake.params
    counts = competitions.generate_demo(p.competition, zip_path.parent, p.size, p.seed, snakemake.threads, p.shift)
    generated = zip_path.parent / "solution.csv"
    generated.replace(snakemake.output.solution)
    log.info("generated %s", counts)
