"""The real Kaggle client, wrapped: credentials checked first, errors explained, transient failures retried.

Facts about the client (2.2.4) that shape this module: ``import kaggle`` authenticates at import
time and exits the process when there are no credentials, so credentials are looked for before
the import; API errors arrive as ``requests.HTTPError`` carrying the response, so the status code
tells a rate limit (429) or a server fault (5xx), which are worth retrying, from a refusal (401,
403, 404), which is not.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from .errors import ExplainedError

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}

CREDENTIALS_HELP = (
    "No Kaggle credentials found. Provide one of:\n"
    "  - an API token: create one at https://www.kaggle.com/settings (API > Create New Token) and\n"
    "    put it in ~/.kaggle/access_token, or export KAGGLE_API_TOKEN=<token>;\n"
    "  - a legacy key: ~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json) holding\n"
    '    {"username": ..., "key": ...}, chmod 600; or export KAGGLE_USERNAME and KAGGLE_KEY.\n'
    "On a cluster, export them in the shell that runs snakemake (they travel in the environment,\n"
    "never in the workflow's params). Or run without Kaggle: source: demo, or source: /path/to/zip."
)


class KaggleError(ExplainedError, RuntimeError):
    """A Kaggle call that failed for good; the message says why and what to do."""


def credentials_source(environ: dict | None = None, home: Path | None = None) -> str | None:
    """Where the client will find credentials (for the log), or None when it will find none."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME", str(Path.home()))) if home is None else home
    if env.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if (home / ".kaggle" / "access_token").is_file():
        return str(home / ".kaggle" / "access_token")
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    folders = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    folders += [home / ".kaggle", home / ".config" / "kaggle"]
    for folder in folders:
        if (folder / "kaggle.json").is_file():
            return str(folder / "kaggle.json")
    return None


def explain(error: Exception, competition: str) -> tuple[str, bool]:
    """A message for a failed call, and whether trying again may help."""
    import requests

    if isinstance(error, requests.HTTPError):
        status = error.response.status_code if error.response is not None else None
        message = str(error)
        if status == 401:
            return f"Kaggle refused the credentials (401: {message}). {CREDENTIALS_HELP}", False
        if status == 403 and "rules" in message.lower():
            return (
                f"Kaggle says: {message}\nAccept the rules of the competition on the website, signed in as the "
                f"account whose credentials you use: https://www.kaggle.com/competitions/{competition}/rules "
                f"— then run the workflow again.",
                False,
            )
        if status == 403:
            return f"Kaggle refused access to {competition!r} (403: {message}).", False
        if status == 404:
            return f"Kaggle has no competition {competition!r} (404: {message}). Check the config key 'competition'.", False
        if status in RETRYABLE_STATUS:
            return f"Kaggle answered {status}: {message}", True
        return f"Kaggle answered {status}: {message}", False
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return (
            f"the download was cut off ({error}) after the Kaggle client's own retries; the partial file "
            f"was discarded. Check the network (or disk space) and run the workflow again",
            False,
        )
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return f"could not reach Kaggle: {error}", True
    return f"{type(error).__name__}: {error}", False


def call_with_retries(call, competition: str, attempts: int, backoff_seconds: float, what: str):
    """Run ``call()``; retry rate limits, server faults and network errors with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except SystemExit as error:  # the client exits when it finds no credentials
            raise KaggleError(CREDENTIALS_HELP) from error
        except Exception as error:  # noqa: BLE001 - classified right below
            message, retryable = explain(error, competition)
            if not retryable:
                raise KaggleError(f"{what} failed: {message}") from error
            if attempt == attempts:
                raise KaggleError(
                    f"{what} failed after {attempts} attempts: {message}. Kaggle may be rate-limiting or down; "
                    f"wait a while and run the workflow again (settings kaggle.retries, kaggle.backoff_seconds)."
                ) from error
            delay = backoff_seconds * 2 ** (attempt - 1)
            log.warning("%s: %s — attempt %d of %d, retrying in %.1f s", what, message, attempt, attempts, delay)
            time.sleep(delay)


def client():
    """An authenticated ``KaggleApi``; raises :class:`KaggleError` with instructions when it cannot be."""
    source = credentials_source()
    if source is None:
        raise KaggleError(CREDENTIALS_HELP)
    log.info("Kaggle credentials from %s", source)
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
    except SystemExit as error:
        raise KaggleError(CREDENTIALS_HELP) from error
    return api


def download_competition(competition: str, folder: Path, attempts: int = 5, backoff_seconds: float = 10.0) -> Path:
    """Download the competition's files as one zip into ``folder``; returns the zip's path."""
    api = client()
    folder.mkdir(parents=True, exist_ok=True)

    def download():
        api.competition_download_files(competition, path=str(folder), force=True, quiet=False)

    call_with_retries(download, competition, attempts, backoff_seconds, f"downloading {competition}")
    zip_path = folder / f"{competition}.zip"
    if not zip_path.is_file():
        found = sorted(p.name for p in folder.iterdir())
        raise KaggleError(f"the Kaggle client finished but {zip_path} is not there (found {found}).")
    return zip_path
