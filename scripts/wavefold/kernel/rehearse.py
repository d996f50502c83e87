"""The notebook rehearsed before Kaggle sees it: run as Kaggle runs it, compared with the DAG, timed.

The package's script runs in a fresh, isolated Python (``-I``: no PYTHONPATH, no user site, not the
workflow's folder) in a temporary folder laid out as Kaggle mounts its inputs
(``<inputs>/<competition>/`` with the competition's files, ``<inputs>/<dataset>/`` the Dataset), where
wavefold cannot be imported. Its ``submission.csv`` must be the DAG's (the same labels, or scores
within the tolerance), and its time, projected to the hidden test's size, must fit the competition's
notebook budget.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ExplainedError
from . import notebook
from .package import CODE_FILE


class RehearsalError(ExplainedError, RuntimeError):
    """The notebook failed, differs from the DAG, or would not fit its budget; the message says which."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"{what}\nFix: {fix}")


def wavefold_imports(path: Path) -> list[str]:
    """The imports of wavefold in a Python file (a package's script must have none)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
        found += [f"{path.name}:{node.lineno}: {name}" for name in names if name.split(".")[0] == "wavefold"]
    return found


def run_notebook(kernel: Path, dataset: Path, competition_root: Path, competition: str, threads: int,
                 log_path: Path, work: Path) -> tuple[Path, dict]:  # fmt: skip
    """Run the package's script as Kaggle would, in the empty folder ``work`` (laid out as /kaggle:
    input/<competition>, input/<dataset>, working/); returns (its submission.csv there, its timing summary)."""
    script = kernel / CODE_FILE
    imports = [line for path in [script, *sorted((dataset / notebook.PORTABLE).glob("*.py"))]
               for line in wavefold_imports(path)]  # fmt: skip
    if imports:
        raise RehearsalError(f"the notebook imports wavefold ({'; '.join(imports)}), which Kaggle does not have",
                             "the package's script and portable/ may import the standard library, numpy, "
                             "pandas, soundfile, soxr and onnxruntime only")  # fmt: skip
    inputs, working = work / "input", work / "working"
    inputs.mkdir()
    working.mkdir()
    (inputs / competition).symlink_to(competition_root.resolve(), target_is_directory=True)
    (inputs / dataset.name).symlink_to(dataset.resolve(), target_is_directory=True)
    copied = working / CODE_FILE
    copied.write_text(script.read_text())
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    isolated = [sys.executable, "-I", "-B"]  # -B: no bytecode written into the package
    if subprocess.run([*isolated, "-c", "import wavefold"], cwd=working, env=environment,
                      capture_output=True).returncode == 0:  # fmt: skip
        raise RehearsalError(f"wavefold is importable by {sys.executable} -I: the rehearsal cannot show that the "
                             "notebook runs without it", "run the workflow without installing wavefold as a package")  # fmt: skip
    command = [*isolated, str(copied), "--inputs", str(inputs), "--output", str(working / "submission.csv"),
               "--threads", str(threads)]  # fmt: skip
    with open(log_path, "w") as log_file:
        done = subprocess.run(command, cwd=working, env=environment, stdout=log_file, stderr=subprocess.STDOUT)
    lines = log_path.read_text().splitlines()
    if done.returncode != 0:
        raise RehearsalError(f"the notebook failed (exit {done.returncode}); its last lines:\n  "
                             + "\n  ".join(lines[-15:]), f"the whole output: {log_path}")  # fmt: skip
    return working / "submission.csv", json.loads(lines[-1])


def differences(notebook_table: pd.DataFrame, dag_table: pd.DataFrame, dag_probabilities: pd.DataFrame,
                submission: dict, labels, tolerance: float) -> pd.DataFrame:  # fmt: skip
    """The rows where the notebook's submission differs from the DAG's beyond ``tolerance``: a score
    apart by more, or a label that differs where the DAG's probabilities of the two are further apart
    than the tolerance (nearer, either is the blend's answer to rounding)."""
    id_column = submission["id_column"]
    mine, theirs = notebook_table.set_index(id_column), dag_table.set_index(id_column)
    missing = theirs.index.difference(mine.index).union(mine.index.difference(theirs.index))
    rows = [{id_column: i, "column": "", "dag": "", "notebook": "", "gap": np.inf, "why": "missing in one"}
            for i in missing]  # fmt: skip
    common = theirs.index.intersection(mine.index)
    if submission["kind"] == "scores":
        gap = (mine.loc[common, list(labels)] - theirs.loc[common, list(labels)]).abs()
        worst = gap.max(axis=1)
        for i in worst[worst > tolerance].index:
            column = gap.loc[i].idxmax()
            rows.append({id_column: i, "column": column, "dag": theirs.loc[i, column], "notebook": mine.loc[i, column],
                         "gap": worst[i], "why": "score"})  # fmt: skip
    else:
        column = submission["column"]
        probabilities = dag_probabilities.set_index(id_column)
        differ = common[(mine.loc[common, column].astype(str) != theirs.loc[common, column].astype(str)).to_numpy()]
        for i in differ:
            ours, dags = str(mine.loc[i, column]).split(), str(theirs.loc[i, column]).split()
            swapped = [(a, b) for a, b in zip(ours, dags) if a != b]
            gap = max(abs(probabilities.loc[i, a] - probabilities.loc[i, b]) for a, b in swapped) if swapped else np.inf
            if gap > tolerance:
                rows.append({id_column: i, "column": column, "dag": theirs.loc[i, column],
                             "notebook": mine.loc[i, column], "gap": gap, "why": "label"})  # fmt: skip
    return pd.DataFrame(rows, columns=[id_column, "column", "dag", "notebook", "gap", "why"])


@dataclass
class Projection:
    """The notebook's time on the hidden test, from its rehearsal."""

    clips: int
    seconds: float
    hidden_clips: int
    budget_minutes: float
    threads: int

    @property
    def seconds_per_clip(self) -> float:
        return self.seconds / max(self.clips, 1)

    @property
    def minutes(self) -> float:
        return self.seconds_per_clip * self.hidden_clips / 60

    @property
    def fits(self) -> bool:
        return self.minutes <= self.budget_minutes

    def describe(self) -> str:
        return (f"{self.minutes:.1f} min of the {self.budget_minutes:g}-min budget for {self.hidden_clips:,} hidden "
                f"clips ({1000 * self.seconds_per_clip:.1f} ms a clip over {self.clips} clips here, "
                f"{self.threads} threads)")  # fmt: skip


def what_to_drop(export_table: pd.DataFrame) -> str:
    """The members by their share of the notebook's model time, most expensive first."""
    cost = export_table.groupby("member")["onnx_ms_per_clip"].sum().sort_values(ascending=False)
    return ", ".join(f"{member} {ms:.1f} ms a clip" for member, ms in cost.items())
