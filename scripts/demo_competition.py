"""Rule demo_competition: generate the synthetic competition's download zip and hidden solution."""

from pathlib import Path

from wavefold import demo
from wavefold.steps import rule_step

with rule_step(snakemake, "demo_competition") as log:
    zip_path = Path(snakemake.output.zip)
    counts = demo.generate(
        zip_path.parent,
        snakemake.params.size,
        snakemake.params.seed,
        snakemake.params.competition,
        snakemake.threads,
        shift=snakemake.params.shift,
    )
    generated = zip_path.parent / "solution.csv"
    generated.replace(snakemake.output.solution)
    log.info("generated %s", counts)
