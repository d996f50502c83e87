"""Submitting: to Kaggle through the real client, or to the local scorer (the demo's hidden solution).

Facts about the client (kaggle 2.2.4, read in its source) that shape this module: a failed upload
makes ``competition_submit`` return a message, not raise, and the 2.2.4 CLI then exits 0 — so a
submission only counts once it is seen in the submissions list. Every submission's description
carries the file's hash, so a file that was already submitted is recognised on the server too, not
only in our own log, and is refused: a duplicate costs one of the day's few submissions for nothing.
The upload itself is never retried automatically, for the same reason.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from . import kaggle_api, submission
from .errors import ExplainedError
from .kaggle_api import KaggleError

log = logging.getLogger(__name__)

LOG_COLUMNS = ["date", "to", "competition", "ref", "file", "sha256", "cv", "public", "private", "status", "description"]


class SubmitError(ExplainedError, RuntimeError):
    """A submission refused before or after the upload; the message says why and what to do."""


@dataclass
class Outcome:
    ref: str
    status: str  # complete | error | pending
    public: float | None
    private: float | None
    error: str = ""


def describe(commit: str, config_hash: str, cv: float, sha256: str) -> str:
    """The submission's description: enough to find the code, settings and file that made it."""
    short = commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")
    return f"wavefold {short} config {config_hash[:12]} cv {cv:.5f} sha256 {sha256[:16]}"


def read_log(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        return pd.DataFrame(columns=LOG_COLUMNS)
    return pd.read_csv(path, dtype={"ref": str, "sha256": str})


def append_log(path: Path, row: dict) -> None:
    new = not Path(path).is_file()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({key: row.get(key, "") for key in LOG_COLUMNS})


def refuse_duplicate(sha256: str, previous: pd.DataFrame, remote_descriptions: list[str], where: str) -> None:
    done = previous[(previous["sha256"] == sha256) & (previous["status"] != "failed")]
    if len(done):
        row = done.iloc[-1]
        raise SubmitError(
            f"this submission file (sha256 {sha256[:16]}) was already submitted to {row['to']} on {row['date']} "
            f"(ref {row['ref']}, public score {row['public']}). Change the models or the blend before submitting again."
        )
    for description in remote_descriptions:
        if f"sha256 {sha256[:16]}" in (description or ""):
            raise SubmitError(
                f"this submission file (sha256 {sha256[:16]}) is already among the submissions on {where} "
                f"({description!r}). Change the models or the blend before submitting again."
            )


def _score(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def submit_local(path: Path, solution: Path, sha256: str, competition) -> Outcome:
    """The local scorer: the demo's hidden solution stands in for Kaggle's (scored by the competition's metric)."""
    scores = submission.score(pd.read_csv(path), pd.read_csv(solution), competition)
    return Outcome(f"local-{sha256[:12]}", "complete", scores["public"], scores["private"])


def refuse_notebook_only(competition) -> None:
    """Raise :class:`SubmitError` for a file submission to a competition that scores notebooks only."""
    if not competition.submits_by_api:
        raise SubmitError(
            f"{competition.slug} is a code competition: Kaggle scores a notebook it runs on the hidden test, not an "
            f"uploaded file. Set submit.kind: notebook (or auto): 'snakemake submit' then uploads the rehearsed "
            f"package of rule package and submits its notebook."
        )


def retrying(competition: str, attempts: int, backoff_seconds: float):
    """``call(what, function, *args, **kwargs)``: a client call retried like the download's (the kaggle settings)."""

    def call(what, function, *args, **kwargs):
        return kaggle_api.call_with_retries(lambda: function(*args, **kwargs), competition, attempts,
                                            backoff_seconds, what)  # fmt: skip

    return call


def check_before_upload(api, competition: str, sha256: str, previous: pd.DataFrame, call) -> None:
    """Before anything is uploaded: a submission left today, and not this file (or package) again."""
    limits = call("reading the submission limits", api.competition_get_submission_limits, competition)
    log.info("submissions: %s today, %s in total, %s allowed now", limits.num_today, limits.num_total,
             limits.num_allowed_now)  # fmt: skip
    if not limits.num_allowed_now:
        raise SubmitError(
            f"Kaggle allows no more submissions to {competition} now ({limits.num_today} made today"
            f"{', the total limit is reached' if limits.limited_by_total else ''}). The daily count resets at "
            f"00:00 UTC; run 'snakemake submit' again then."
        )
    remote = call("listing the submissions", api.competition_submissions, competition) or []
    refuse_duplicate(sha256, previous, [s.description for s in remote], f"Kaggle ({competition})")


def submit_kaggle(path: Path, competition: str, description: str, sha256: str, previous: pd.DataFrame,
                  wait_seconds: float, poll_seconds: float, attempts: int, backoff_seconds: float,
                  api=None) -> Outcome:  # fmt: skip
    """Upload through the real client; confirm the submission in the list; wait for its score. Every call
    but the upload is retried like the download's (``attempts``, ``backoff_seconds``: the kaggle settings)."""
    api = api or kaggle_api.client()
    call = retrying(competition, attempts, backoff_seconds)
    check_before_upload(api, competition, sha256, previous, call)
    try:  # never retried: a second upload would cost a second submission
        response = api.competition_submit(str(path), description, competition, quiet=True)
    except SystemExit as error:
        raise KaggleError(kaggle_api.CREDENTIALS_HELP) from error
    except Exception as error:  # noqa: BLE001 - explained below
        raise KaggleError(f"submitting {path} failed: {kaggle_api.explain(error, competition)[0]}") from error
    log.info("the client answered: %s (ref %s)", response.message, getattr(response, "ref", None))

    return wait_for_score(api, competition, description, response.message, wait_seconds, poll_seconds, call)


def wait_for_score(api, competition: str, description: str, answer: str, wait_seconds: float, poll_seconds: float,
                   call) -> Outcome:  # fmt: skip
    """The submission whose description is ``description``, once scored (or as it is at the deadline).
    It must be in Kaggle's list: the client's ``answer`` alone proves nothing (a failed upload answers too)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        listed = call("listing the submissions", api.competition_submissions, competition) or []
        mine = [s for s in listed if s.description == description]
        if not mine:
            raise SubmitError(
                f"the upload did not become a submission: the client said {answer!r} and Kaggle's submissions "
                f"list has no entry {description!r}. Nothing was recorded; try again later."
            )
        entry = mine[0]
        status = getattr(entry.status, "name", str(entry.status)).lower()
        if status in ("complete", "error") or time.monotonic() >= deadline:
            return Outcome(str(entry.ref), status, _score(entry.public_score), _score(entry.private_score),
                           entry.error_description or "")  # fmt: skip
        log.info("submission %s is %s; asking again in %.0f s", entry.ref, status, poll_seconds)
        time.sleep(poll_seconds)


def record(log_path: Path, to: str, competition: str, path: Path, sha256: str, cv: float, description: str,
           outcome: Outcome) -> dict:  # fmt: skip
    row = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "to": to, "competition": competition,
           "ref": outcome.ref, "file": str(path), "sha256": sha256, "cv": round(cv, 6),
           "public": outcome.public, "private": outcome.private, "status": outcome.status,
           "description": description}  # fmt: skip
    append_log(log_path, row)
    return row
