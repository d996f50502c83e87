"""A code competition's submission through the real kaggle client: the Dataset, the notebook, the score.

The order Kaggle needs (../notes of the project, checked in kaggle 2.2.4's source): the Dataset created
(or a new version of it) with ``dir_mode="zip"`` — without it the client silently skips sub-folders,
the models among them — and waited for until Kaggle has processed it; the notebook pushed (a new
version, which Kaggle runs once on the competition's visible data) and waited for until it completes
— on ERROR its log is fetched and its last lines shown; then the code submission of that version,
which Kaggle re-runs on the hidden test, and its score awaited in the submissions list as for a file.

Every call but the submission itself is retried like the download's (rate limits, server faults);
the submission is never retried (a second one costs a second of the day's few). The package's hash
is in the submission's description: the same package is refused a second time, from our log or from
Kaggle's list.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import kaggle_api
from ..submit import Outcome, SubmitError, check_before_upload, retrying, wait_for_score
from .package import KernelSettings

log = logging.getLogger(__name__)

#: What Snakemake leaves in a directory output, which is not the package's.
NOT_PACKAGE = (".snakemake_timestamp",)
#: Kaggle's dataset states on the way to READY (kagglesdk's DatabundleVersionStatus, lower case).
DATASET_FAILED = ("failed", "deleted")


def package_sha256(*folders: Path) -> str:
    """One digest of the package's files (names and bytes), what its submissions are recognised by."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in NOT_PACKAGE):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class Timing:
    """How long to wait for each stage, and how often to ask."""

    dataset_seconds: float
    notebook_seconds: float
    score_seconds: float
    poll_seconds: float

    @classmethod
    def from_minutes(cls, dataset: float, notebook: float, score: float, poll_seconds: float) -> "Timing":
        return cls(dataset * 60, notebook * 60, score * 60, poll_seconds)


def _status_name(value) -> str:
    return str(getattr(value, "name", value)).lower()


def upload_dataset(api, folder: Path, dataset_id: str, version_notes: str, call, timing: Timing) -> None:
    """Create the Dataset, or a new version of it, its sub-folders zipped; wait until Kaggle has it ready."""
    try:
        exists = bool(call("asking for the Dataset", api.dataset_status, dataset_id))
    except kaggle_api.KaggleError as error:
        if "404" not in str(error) and "not found" not in str(error).lower():
            raise
        exists = False
    ignore = list(NOT_PACKAGE)
    if exists:
        result = call("uploading a new version of the Dataset", api.dataset_create_version, str(folder), version_notes,
                      quiet=True, dir_mode="zip", ignore_patterns=ignore)  # fmt: skip
    else:
        result = call("creating the Dataset", api.dataset_create_new, str(folder), public=False, quiet=True,
                      dir_mode="zip", ignore_patterns=ignore)  # fmt: skip
    if result is None or (getattr(result, "error", None) or "") != "" or str(getattr(result, "status", "ok")).lower() not in ("ok", ""):
        raise SubmitError(f"Kaggle did not take the Dataset {dataset_id}: {getattr(result, 'error', None) or result!r}. "
                          "Nothing was submitted; check kernel.owner and kernel.dataset_slug")  # fmt: skip
    log.info("the Dataset %s %s; waiting until Kaggle has processed it", dataset_id,
             "has a new version" if exists else "was created")  # fmt: skip
    deadline = time.monotonic() + timing.dataset_seconds
    while True:
        status = _status_name(call("asking for the Dataset's status", api.dataset_status, dataset_id))
        if status == "ready":
            return
        if status in DATASET_FAILED:
            raise SubmitError(f"Kaggle could not process the Dataset {dataset_id} (status {status}). Nothing was submitted")
        if time.monotonic() >= deadline:
            raise SubmitError(f"the Dataset {dataset_id} is still {status} after {timing.dataset_seconds:.0f} s; "
                              "run 'snakemake submit' again later (the same package is uploaded again)")  # fmt: skip
        log.info("the Dataset is %s; asking again in %.0f s", status, timing.poll_seconds)
        time.sleep(timing.poll_seconds)


def push_notebook(api, folder: Path, notebook_id: str, call, timing: Timing) -> int:
    """Push the notebook (a new version, which Kaggle runs); wait until it completes; its version number."""
    result = call("pushing the notebook", api.kernels_push, str(folder))
    if result is None or getattr(result, "error", None):
        raise SubmitError(f"Kaggle refused the notebook {notebook_id}: {getattr(result, 'error', None) or result!r}")
    invalid = [*(result.invalid_dataset_sources or []), *(result.invalid_competition_sources or [])]
    if invalid:
        raise SubmitError(f"the notebook's sources {invalid} are not valid on Kaggle (kernel-metadata.json): accept "
                          "the competition's rules and check kernel.owner")  # fmt: skip
    version = int(result.version_number or 0)
    log.info("pushed %s, version %d; waiting until Kaggle has run it", notebook_id, version)
    deadline = time.monotonic() + timing.notebook_seconds
    while True:
        status = call("asking for the notebook's status", api.kernels_status, notebook_id)
        name = _status_name(status.status)
        if name == "complete":
            return version
        if name in ("error", "cancel_requested", "cancel_acknowledged"):
            raise SubmitError(f"the notebook {notebook_id} version {version} ended in {name.upper()}"
                              f"{': ' + status.failure_message if status.failure_message else ''}; its last lines:\n  "
                              + "\n  ".join(notebook_log_tail(api, notebook_id, call)))  # fmt: skip
        if time.monotonic() >= deadline:
            raise SubmitError(f"the notebook {notebook_id} is still {name} after {timing.notebook_seconds:.0f} s; "
                              "nothing was submitted. Run 'snakemake submit' again once it has finished")  # fmt: skip
        log.info("the notebook is %s; asking again in %.0f s", name, timing.poll_seconds)
        time.sleep(timing.poll_seconds)


def notebook_log_tail(api, notebook_id: str, call, lines: int = 15) -> list[str]:
    """The last lines of a notebook run's log (kernels output), or why there is none."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            files, _ = call("fetching the notebook's log", api.kernels_output, notebook_id, folder, quiet=True)
        except kaggle_api.KaggleError as error:
            return [f"(no log: {error})"]
        logs = [Path(f) for f in files if f.endswith(".log")]
        return logs[0].read_text().splitlines()[-lines:] if logs else ["(the run left no log)"]


def submit_notebook(api, dataset: Path, notebook: Path, competition: str, dataset_id: str, notebook_id: str,
                    description: str, sha256: str, previous, timing: Timing, attempts: int,
                    backoff_seconds: float) -> tuple[Outcome, int]:  # fmt: skip
    """The whole code submission (module docstring); returns its outcome and the notebook's version."""

    call = retrying(competition, attempts, backoff_seconds)
    check_before_upload(api, competition, sha256, previous, call)
    upload_dataset(api, dataset, dataset_id, description, call, timing)
    version = push_notebook(api, notebook, notebook_id, call, timing)
    try:  # never retried: a second call would cost a second submission
        response = api.competition_submit_code("submission.csv", description, competition, kernel=notebook_id,
                                               kernel_version=version, quiet=True)  # fmt: skip
    except Exception as error:  # noqa: BLE001 - explained below
        raise kaggle_api.KaggleError(f"submitting {notebook_id} version {version} failed: "
                                     f"{kaggle_api.explain(error, competition)[0]}") from error  # fmt: skip
    log.info("the client answered: %s (ref %s)", response.message, getattr(response, "ref", None))
    return wait_for_score(api, competition, description, response.message, timing.score_seconds, timing.poll_seconds,
                          call), version  # fmt: skip


def submit_package(dataset: Path, notebook: Path, competition: str, kernel: dict, description: str, sha256: str,
                   previous, timing: Timing, kaggle: dict) -> Outcome:  # fmt: skip
    """:func:`submit_notebook` of the package rule's two folders, with the ids the ``kernel`` settings
    give them and the ``kaggle`` settings' retries."""
    settings = KernelSettings.from_config(kernel)
    outcome, version = submit_notebook(kaggle_api.client(), dataset, notebook, competition,
                                       settings.dataset_id(competition), settings.notebook_id(competition),
                                       description, sha256, previous, timing, kaggle["retries"],
                                       kaggle["backoff_seconds"])  # fmt: skip
    log.info("submitted %s version %d", settings.notebook_id(competition), version)
    return outcome
