"""Rule demo_competition: generate the synthetic competition's download zip, hidden solution and manifest."""

import json
from pathlib import Path

from wavefold import competitions
from wavefold.steps import rule_step

with rule_step(snakemake, "demo_competition") as log:
    zip_path = Path(snakemake.output.zip)
    p = snakemake.params
    counts = competitions.generate_demo(p.competition, zip_path.parent, p.size, p.seed, snakemake.threads, p.shift)
    generated = zip_path.parent / "solution.csv"
    generated.replace(snakemake.output.solution)
    manifest = {"competition": p.competition, "size": p.size, "shift": p.shift, "seed": p.seed, **counts}
    Path(snakemake.output.manifest).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    log.info("generated %s", manifest)
