"""Manifests of the train, test and noise audio, every file checked, every problem written down.

Which files there are, and their labels and groups, is the competition's to say
(:meth:`wavefold.competitions.Competition.list_train`); this module reads and checks the audio.

``train.csv``: one row per usable training clip — ``id``, ``path``, ``target`` (the finest class
the competition names), ``label`` (the submission label), ``group`` (clips that share a fold),
the competition's own columns (the speech challenge: ``speaker``, ``repeat``, ``list``) and what
was stored.
``test.csv``: every test clip, ``usable`` False where its audio could not be read (it is cached as
silence, because the submission still needs a row for it). ``windows`` (both manifests): how many
rows of the cache the clip has: 1, except under the audio policy ``long: windows``.
``noise.csv``: the background recordings.
``problems.csv``: one row per problem per file, with the action taken. Row order is the cache's.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .audio import AudioPolicy, ClipReport, conform
from .competitions import Competition, problem_row

log = logging.getLogger(__name__)

PROBLEM_COLUMNS = ["split", "path", "problem", "detail", "action"]


def _inspect(path: Path, policy: AudioPolicy, fixed_length: bool) -> ClipReport:
    return conform(path, policy, fixed_length)[1]


def inspect_all(
    paths: list[Path], policy: AudioPolicy, workers: int, desc: str, fixed_length: bool = True
) -> list[ClipReport]:
    """Decode and check every file, in parallel; reports in the order of ``paths``."""
    job = partial(_inspect, policy=policy, fixed_length=fixed_length)
    if workers <= 1:
        return [job(p) for p in tqdm(paths, desc=desc, mininterval=10)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(job, paths, chunksize=256)
        return list(tqdm(results, total=len(paths), desc=desc, mininterval=10))


def _report_columns(report: ClipReport) -> dict:
    return {
        "stored_rate": report.sample_rate,
        "stored_channels": report.channels,
        "stored_subtype": report.subtype,
        "stored_seconds": round(report.seconds, 4),
        "fixed": ";".join(p.action for p in report.problems),
    }


def _cached_columns(report: ClipReport, policy: AudioPolicy) -> dict:
    """What the cache holds of a clip: its rows (windows), one for a clip cached as silence."""
    return {**_report_columns(report), "windows": 1 if report.rejected else policy.window_count(report.samples)}


def _problem_rows(split: str, path: str, report: ClipReport) -> list[dict]:
    return [problem_row(split, path, p.kind, p.detail, p.action) for p in report.problems]


def index_train(root: Path, competition: Competition, policy: AudioPolicy,
                workers: int) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:  # fmt: skip
    """(train manifest, noise manifest, problems) of the extracted competition at ``root``."""
    listing = competition.list_train(root, warn=log.warning)
    problems = list(listing.problems)
    clips = listing.clips
    reports = inspect_all([root / p for p in clips["path"]], policy, workers, "checking train clips")
    keep = []
    for relative, report in zip(clips["path"], reports):
        problems += _problem_rows("train", relative, report)
        keep.append(not report.rejected)
    stored = pd.DataFrame([_cached_columns(r, policy) for r, k in zip(reports, keep) if k])
    train = pd.concat([clips[keep].reset_index(drop=True), stored], axis=1)

    noise_reports = inspect_all([root / p for p in listing.noise], policy, 1, "checking noise", fixed_length=False)
    noise_rows = []
    for relative, report in zip(listing.noise, noise_reports):
        problems += _problem_rows("noise", relative, report)
        if not report.rejected:
            noise_rows.append({"name": Path(relative).name, "path": relative, **_report_columns(report)})
    noise = pd.DataFrame(noise_rows, columns=["name", "path", *_report_columns(ClipReport())])
    return train, noise, problems


def index_test(
    root: Path, competition: Competition, policy: AudioPolicy, workers: int
) -> tuple[pd.DataFrame, list[dict]]:
    paths, problems = competition.list_test(root)
    reports = inspect_all(paths, policy, workers, "checking test clips")
    rows = []
    for path, report in zip(paths, reports):
        relative = str(path.relative_to(root))
        for row in _problem_rows("test", relative, report):
            if row["action"] == "rejected":
                row["action"] = "rejected; cached as silence (the submission needs every test clip)"
            problems.append(row)
        rows.append({"fname": path.name, "path": relative, "usable": not report.rejected,
                     **_cached_columns(report, policy)})  # fmt: skip
    return pd.DataFrame(rows), problems


def problems_frame(problems: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def summarise(train: pd.DataFrame, test: pd.DataFrame, noise: pd.DataFrame, problems: pd.DataFrame) -> str:
    lines = [
        f"train: {len(train)} usable clips, {train['group'].nunique() if len(train) else 0} groups (speakers)",
        f"test: {len(test)} clips, {int((~test['usable']).sum()) if len(test) else 0} unreadable (cached as silence)",
        f"noise: {len(noise)} recordings, {noise['stored_seconds'].sum() if len(noise) else 0:.1f} s",
        f"problems: {len(problems)} (by problem and action below)",
    ]
    if len(problems):
        counts = problems.groupby(["split", "problem", "action"]).size()
        lines += [f"  {split} {problem} -> {action}: {n}" for (split, problem, action), n in counts.items()]
    return "\n".join(lines)
