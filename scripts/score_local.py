"""Rule score_local: the demo's scores on its hidden solution — the submission, and every round's
blend and models next to their CV."""

import json

import pandas as pd

from wavefold import blend, submission
from wavefold.steps import rule_step

with rule_step(snakemake, "score_local") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    solution = pd.read_csv(inp.solution)
    rows = []
    tests = iter(inp.model_tests)
    for round_, candidates_path, blend_test in zip(p.rounds, inp.candidates, inp.blend_tests):
        candidates = pd.read_csv(candidates_path)
        chosen, cv = blend.chosen_candidate(candidates)
        accuracy = candidates.set_index("candidate")["accuracy"]
        tables = {f"blend ({chosen})": (blend_test, cv)}
        tables.update({model: (next(tests), accuracy[model]) for model in p.models})
        for name, (path, cv) in tables.items():
            hidden = submission.score(submission.make_submission(pd.read_csv(path)), solution)
            rows.append({"round": round_, "predictions": name, "cv": cv, "hidden": hidden["all"],
                         "public": hidden["public"], "private": hidden["private"]})  # fmt: skip
    scores = submission.score(pd.read_csv(inp.submission), solution)
    scores["blend"], scores["cv"] = blend.chosen_candidate(candidates)  # the final round's
    with open(out.score, "w") as handle:
        json.dump(scores, handle, indent=2)
    table = pd.DataFrame(rows)
    table["cv_minus_hidden"] = table["cv"] - table["hidden"]
    table.to_csv(out.table, index=False, float_format="%.4f")
    log.info("local score of the submission: %s", scores)
    log.info("CV next to the hidden solution's score (the CV should predict it):\n%s", table.to_string(index=False))
