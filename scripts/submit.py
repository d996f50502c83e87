"""Rule submit: upload the submission (Kaggle, or the local scorer for the demo), wait for the score, record it."""

import json
from pathlib import Path

import pandas as pd

from wavefold import blend, competitions, provenance, report, submission, submit
from wavefold.kernel import upload
from wavefold.steps import rule_step

with rule_step(snakemake, "submit") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    path = Path(inp.submission)
    # Exactly the file the submission rule checked: not one edited by hand since, nor an invalid one.
    sample = pd.read_csv(Path(inp.extracted) / "sample_submission.csv")
    competition = competitions.get(p.competition)
    sha256 = submission.check_upload(path, sample, Path(inp.digest).read_text(), competition)
    if p.kind == "notebook":  # what is submitted is the package: it is what the description's hash names
        path, sha256 = Path(inp.rehearsal), upload.package_sha256(Path(inp.dataset), Path(inp.notebook))
    _, cv = blend.chosen_candidate(pd.read_csv(inp.candidates), competition.metric_name)
    description = submit.describe(provenance.git_commit(Path(snakemake.scriptdir).parent), provenance.config_hash(snakemake.config), cv, sha256)
    previous = submit.read_log(Path(out.history))  # update(): the history as the last submit left it
    log.info("submitting %s (%s) to %s: %s", path, p.kind, p.to, description)
    kaggle = snakemake.config["kaggle"]  # how hard to try, as the download does (not params: it changes nothing)
    if p.to == "local":
        submit.refuse_duplicate(sha256, previous, [], "the local scorer")
        outcome = submit.submit_local(path, Path(inp.solution), sha256, competition)
    elif p.kind == "notebook":
        timing = upload.Timing.from_minutes(p.dataset_wait_minutes, p.notebook_wait_minutes, p.wait_minutes,
                                            p.poll_seconds)  # fmt: skip
        outcome = upload.submit_package(Path(inp.dataset), Path(inp.notebook), p.competition, p.kernel, description,
                                        sha256, previous, timing, kaggle)  # fmt: skip
    else:
        submit.refuse_notebook_only(competition)
        outcome = submit.submit_kaggle(path, p.competition, description, sha256, previous, p.wait_minutes * 60,
                                       p.poll_seconds, kaggle["retries"], kaggle["backoff_seconds"])  # fmt: skip
    row = submit.record(Path(out.history), p.to, p.competition, path, sha256, cv, description, outcome)
    with open(out.record, "w") as handle:
        json.dump({**row, "error": outcome.error}, handle, indent=2)
    report.plot_submissions(submit.read_log(Path(out.history)), out.history_plot)
    log.info("recorded in %s: %s", out.history, row)
    if outcome.status == "error":
        raise submit.SubmitError(f"Kaggle could not score the submission {outcome.ref}: {outcome.error}")
    if outcome.status != "complete":
        log.warning("no score yet after %s min; 'kaggle competitions submissions -c %s' shows it later",
                    p.wait_minutes, p.competition)  # fmt: skip
