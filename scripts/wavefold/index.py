"""Manifests of the train, test and noise audio, every file checked, every problem written down.

``train.csv``: one row per usable training clip — ``id`` (``word/name.wav``; names repeat across
word folders), ``path``, ``word``, ``label`` (12 classes), ``speaker``, ``repeat``, ``list``
(``training``/``validation``/``testing`` from the shipped list files) and what was stored.
``test.csv``: every test clip, ``usable`` False where its audio could not be read (it is cached as
silence, because the submission still needs a row for it). ``noise.csv``: the background recordings.
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
from .labels import NOISE_FOLDER, TEST_CLIP_NAME, TRAIN_CLIP_NAME, WORDS, label_of, speaker_of

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


def _problem(split: str, path: str, problem: str, detail: str, action: str) -> dict:
    """One row of the problems file."""
    return {"split": split, "path": path, "problem": problem, "detail": detail, "action": action}


def _problem_rows(split: str, path: str, report: ClipReport) -> list[dict]:
    return [_problem(split, path, p.kind, p.detail, p.action) for p in report.problems]


def read_lists(train_dir: Path) -> dict[str, str]:
    """Clip id -> ``validation``/``testing`` from the shipped list files (absent: ``training``)."""
    membership = {}
    for name in ("validation", "testing"):
        list_file = train_dir / f"{name}_list.txt"
        if list_file.is_file():
            for line in list_file.read_text().split():
                membership[line.strip()] = name
        else:
            log.warning("%s is missing: every clip is taken as 'training' in the list column", list_file)
    return membership


def index_train(root: Path, policy: AudioPolicy, workers: int) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """(train manifest, noise manifest, problems) for ``root/train``."""
    audio = root / "train" / "audio"
    problems: list[dict] = []
    clip_paths: list[Path] = []
    for folder in sorted(p for p in audio.iterdir() if p.is_dir()):
        if folder.name == NOISE_FOLDER:
            continue
        if folder.name not in WORDS:
            problems.append(
                _problem(
                    "train", str(folder.relative_to(root)), "unexpected_folder", "not one of the 30 words", "skipped"
                )
            )
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() == ".wav":
                clip_paths.append(path)
            else:
                problems.append(
                    _problem("train", str(path.relative_to(root)), "not_audio", "not a .wav file", "skipped")
                )

    reports = inspect_all(clip_paths, policy, workers, "checking train clips")
    membership = read_lists(root / "train")
    rows = []
    for path, report in zip(clip_paths, reports):
        relative = str(path.relative_to(root))
        clip_id = f"{path.parent.name}/{path.name}"
        problems += _problem_rows("train", relative, report)
        match = TRAIN_CLIP_NAME.match(path.name)
        if match is None:
            problems.append(_problem("train", relative, "name", "not <speaker>_nohash_<n>.wav", "kept"))
        if report.rejected:
            continue
        rows.append({
            "id": clip_id, "path": relative, "word": path.parent.name, "label": label_of(path.parent.name),
            "speaker": speaker_of(path.name) if match is None else match["speaker"],
            "repeat": int(match["repeat"]) if match else 0, "list": membership.get(clip_id, "training"),
            **_report_columns(report),
        })  # fmt: skip
    train = pd.DataFrame(rows)

    noise_paths = sorted((audio / NOISE_FOLDER).glob("*.wav"))
    noise_reports = inspect_all(noise_paths, policy, 1, "checking noise", fixed_length=False)
    noise_rows = []
    for path, report in zip(noise_paths, noise_reports):
        relative = str(path.relative_to(root))
        problems += _problem_rows("noise", relative, report)
        if not report.rejected:
            noise_rows.append({"name": path.name, "path": relative, **_report_columns(report)})
    return train, pd.DataFrame(noise_rows), problems


def index_test(root: Path, policy: AudioPolicy, workers: int) -> tuple[pd.DataFrame, list[dict]]:
    audio = root / "test" / "audio"
    problems: list[dict] = []
    paths = []
    for path in sorted(audio.iterdir()):
        if path.suffix.lower() == ".wav":
            paths.append(path)
            if not TEST_CLIP_NAME.match(path.name):
                problems.append(_problem("test", str(path.relative_to(root)), "name", "not clip_<9 hex>.wav", "kept"))
        else:
            problems.append(_problem("test", str(path.relative_to(root)), "not_audio", "not a .wav file", "skipped"))
    reports = inspect_all(paths, policy, workers, "checking test clips")
    rows = []
    for path, report in zip(paths, reports):
        relative = str(path.relative_to(root))
        for row in _problem_rows("test", relative, report):
            if row["action"] == "rejected":
                row["action"] = "rejected; cached as silence (the submission needs every test clip)"
            problems.append(row)
        rows.append({"fname": path.name, "path": relative, "usable": not report.rejected, **_report_columns(report)})
    return pd.DataFrame(rows), problems


def problems_frame(problems: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def summarise(train: pd.DataFrame, test: pd.DataFrame, noise: pd.DataFrame, problems: pd.DataFrame) -> str:
    lines = [
        f"train: {len(train)} usable clips, {train['speaker'].nunique() if len(train) else 0} speakers",
        f"test: {len(test)} clips, {int((~test['usable']).sum()) if len(test) else 0} unreadable (cached as silence)",
        f"noise: {len(noise)} recordings, {noise['stored_seconds'].sum() if len(noise) else 0:.1f} s",
        f"problems: {len(problems)} (by problem and action below)",
    ]
    if len(problems):
        counts = problems.groupby(["split", "problem", "action"]).size()
        lines += [f"  {split} {problem} -> {action}: {n}" for (split, problem, action), n in counts.items()]
    return "\n".join(lines)
