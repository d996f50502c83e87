"""Rule submission: fname,label from the final blend, checked against sample_submission.csv before it is final."""

from pathlib import Path

import pandas as pd

from wavefold import competitions, submission
from wavefold.steps import rule_step
from wavefold.tracking import live

with rule_step(snakemake, "submission") as log:
    inp, out = snakemake.input, snakemake.output
    competition = competitions.get(snakemake.params.competition)
    table = submission.make_submission(pd.read_csv(inp.blend), competition)
    submission.write_checked(table, pd.read_csv(Path(inp.extracted) / "sample_submission.csv"), Path(out.submission),
                             competition)  # fmt: skip
    # What 'snakemake submit' will upload, and nothing else: it compares the file with this hash.
    Path(out.digest).write_text(submission.file_sha256(out.submission) + "\n")
    log.info("%d clips; predicted (top) label mix:\n%s", len(table),
             competition.predicted_labels(table).value_counts().to_string())  # fmt: skip
    live.log_to_invocation(live.Context.of(snakemake), artifacts=[out.submission])
