"""The submission file: written from the final blend, checked against sample_submission.csv, scored locally.

Kaggle rejects (or, worse, silently mis-scores) a file with missing clips, extra clips or an invalid
label, and a rejected upload still costs one of the day's submissions. So the file is checked
before it is written as final: the same columns and clips as ``sample_submission.csv``, each clip
once, and predictions the competition accepts. The format and the metric are the competition's
(:class:`wavefold.competitions.Competition`); the checks and the bookkeeping here are the same for all.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import ExplainedError

if TYPE_CHECKING:
    from .competitions import Competition


class SubmissionError(ExplainedError, ValueError):
    """A submission that Kaggle would refuse; the message lists what is wrong."""


def make_submission(test_probabilities: pd.DataFrame, competition: Competition) -> pd.DataFrame:
    """The submission's rows, in the competition's format, from a test probability table."""
    id_column = competition.id_column
    values = test_probabilities[list(competition.labels)].to_numpy()
    return competition.submission_table(test_probabilities[id_column], values)


def label_shares(labels, all_labels) -> pd.Series:
    """The share of each of ``all_labels`` among ``labels`` (0 for a label that never occurs)."""
    return pd.Series(labels).value_counts(normalize=True).reindex(list(all_labels), fill_value=0.0)


def problems(submission: pd.DataFrame, sample: pd.DataFrame, competition: Competition) -> list[str]:
    """Everything that makes ``submission`` invalid against the competition's sample submission."""
    found = []
    id_column = competition.id_column
    if list(submission.columns) != list(sample.columns):
        return [f"columns are {list(submission.columns)}, the sample submission's are {list(sample.columns)}"]
    if len(submission) != len(sample):
        found.append(f"{len(submission)} rows, the sample submission has {len(sample)}")
    repeated = submission[id_column][submission[id_column].duplicated()]
    if len(repeated):
        found.append(f"{len(repeated)} clips appear more than once, e.g. {repeated.head(3).tolist()}")
    missing = sorted(set(sample[id_column]) - set(submission[id_column]))
    if missing:
        found.append(f"{len(missing)} clips of the sample submission are missing, e.g. {missing[:3]}")
    extra = sorted(set(submission[id_column]) - set(sample[id_column]))
    if extra:
        found.append(f"{len(extra)} clips are not in the sample submission, e.g. {extra[:3]}")
    return found + competition.submission_problems(submission)


def write_checked(submission: pd.DataFrame, sample: pd.DataFrame, path: Path, competition: Competition) -> None:
    """Write ``submission`` to ``path`` only when it is valid; an invalid file is never left as final."""
    found = problems(submission, sample, competition)
    if found:
        raise SubmissionError(f"the submission for {path} is invalid, so it was not written:\n  - " + "\n  - ".join(found))
    partial = Path(path).with_suffix(".partial")
    submission.to_csv(partial, index=False)
    partial.replace(path)


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def score(submission: pd.DataFrame, solution: pd.DataFrame, competition: Competition) -> dict:
    """The competition's metric on the whole hidden solution and on its public and private parts."""
    values = np.asarray(competition.score_rows(submission, solution), dtype=float)
    scores = {"all": float(values.mean())}
    for usage in ("Public", "Private"):
        part = (solution["Usage"] == usage).to_numpy()
        scores[usage.lower()] = float(values[part].mean()) if part.any() else float("nan")
    return scores


def check_upload(path, sample: pd.DataFrame, recorded_sha256: str, competition: Competition) -> str:
    """The sha256 of ``path`` when it is exactly the file the ``submission`` rule checked and wrote,
    and still valid against the sample submission; else :class:`SubmissionError` saying what changed."""
    found = problems(pd.read_csv(path), sample, competition)
    if found:
        raise SubmissionError(f"{path} is not a valid submission, so it was not uploaded:\n  - " + "\n  - ".join(found)
                              + "\nRebuild it from the blend: snakemake --forcerun submission")  # fmt: skip
    sha256 = file_sha256(path)
    if sha256 != recorded_sha256.strip():
        raise SubmissionError(
            f"{path} is not the file the submission rule checked and wrote (sha256 {sha256[:16]}, recorded "
            f"{recorded_sha256.strip()[:16]}): it was changed since. Only the workflow's own submission is "
            f"uploaded, with its CV; rebuild it with: snakemake --forcerun submission"
        )
    return sha256
