"""The submission file: written from the final blend, checked against sample_submission.csv, scored locally.

Kaggle rejects (or, worse, silently mis-scores) a file with missing clips, extra clips or an invalid
label, and a rejected upload still costs one of the day's submissions. So the file is checked
before it is written as final: the same clips as ``sample_submission.csv``, each once, each with
one of the 12 labels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ExplainedError
from .labels import LABELS


class SubmissionError(ExplainedError, ValueError):
    """A submission that Kaggle would refuse; the message lists what is wrong."""


def make_submission(test_probabilities: pd.DataFrame) -> pd.DataFrame:
    """``fname,label``: the most probable of the 12 labels for every test clip."""
    predicted = test_probabilities[list(LABELS)].to_numpy().argmax(1)
    return pd.DataFrame({"fname": test_probabilities["fname"], "label": np.array(LABELS)[predicted]})


def label_shares(labels) -> pd.Series:
    """The share of each of the 12 labels among ``labels`` (0 for a label that never occurs)."""
    return pd.Series(labels).value_counts(normalize=True).reindex(LABELS, fill_value=0.0)


def problems(submission: pd.DataFrame, sample: pd.DataFrame) -> list[str]:
    """Everything that makes ``submission`` invalid against the competition's sample submission."""
    found = []
    if list(submission.columns) != list(sample.columns):
        return [f"columns are {list(submission.columns)}, the sample submission's are {list(sample.columns)}"]
    if len(submission) != len(sample):
        found.append(f"{len(submission)} rows, the sample submission has {len(sample)}")
    repeated = submission["fname"][submission["fname"].duplicated()]
    if len(repeated):
        found.append(f"{len(repeated)} clips appear more than once, e.g. {repeated.head(3).tolist()}")
    missing = sorted(set(sample["fname"]) - set(submission["fname"]))
    if missing:
        found.append(f"{len(missing)} clips of the sample submission are missing, e.g. {missing[:3]}")
    extra = sorted(set(submission["fname"]) - set(sample["fname"]))
    if extra:
        found.append(f"{len(extra)} clips are not in the sample submission, e.g. {extra[:3]}")
    invalid = submission.loc[~submission["label"].isin(LABELS), "label"]
    if len(invalid):
        found.append(
            f"{len(invalid)} labels are not one of {' '.join(LABELS)}, e.g. {sorted(set(invalid.astype(str)))[:3]}"
        )
    return found


def write_checked(submission: pd.DataFrame, sample: pd.DataFrame, path: Path) -> None:
    """Write ``submission`` to ``path`` only when it is valid; an invalid file is never left as final."""
    found = problems(submission, sample)
    if found:
        raise SubmissionError(f"the submission for {path} is invalid, so it was not written:\n  - " + "\n  - ".join(found))
    partial = Path(path).with_suffix(".partial")
    submission.to_csv(partial, index=False)
    partial.replace(path)


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def score(submission: pd.DataFrame, solution: pd.DataFrame) -> dict:
    """Accuracy on the public and private parts of the hidden solution (the competition's metric)."""
    merged = solution.merge(submission, on="fname", how="left", suffixes=("", "_predicted"))
    correct = merged["label"] == merged["label_predicted"]
    scores = {"all": float(correct.mean())}
    for usage in ("Public", "Private"):
        part = merged["Usage"] == usage
        scores[usage.lower()] = float(correct[part].mean()) if part.any() else float("nan")
    return scores


def check_upload(path, sample: pd.DataFrame, recorded_sha256: str) -> str:
    """The sha256 of ``path`` when it is exactly the file the ``submission`` rule checked and wrote,
    and still valid against the sample submission; else :class:`SubmissionError` saying what changed."""
    found = problems(pd.read_csv(path), sample)
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
