"""Rule score_local: the demo submission's public and private score against the demo's hidden solution."""

import json

import pandas as pd

from wavefold import blend, submission
from wavefold.steps import rule_step

with rule_step(snakemake, "score_local") as log:
    inp = snakemake.input
    scores = submission.score(pd.read_csv(inp.submission), pd.read_csv(inp.solution))
    scores["blend"], scores["cv"] = blend.chosen_candidate(pd.read_csv(inp.candidates))
    with open(snakemake.output[0], "w") as handle:
        json.dump(scores, handle, indent=2)
    log.info("local score: %s", scores)
