"""Rule rehearse: the notebook run offline without wavefold on the test audio, against the DAG and the budget."""

import json
import tempfile
from pathlib import Path

import pandas as pd

from wavefold import competitions
from wavefold.kernel import package, rehearse
from wavefold.steps import rule_step

with rule_step(snakemake, "rehearse") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    competition, settings = competitions.get(p.competition), package.KernelSettings.from_config(p.settings)
    recipe = json.loads((Path(inp.dataset) / "recipe.json").read_text())
    threads = min(settings.threads, snakemake.threads)
    with tempfile.TemporaryDirectory(prefix="wavefold-rehearsal-") as work:  # /kaggle, laid out
        written, timing = rehearse.run_notebook(Path(inp.notebook), Path(inp.dataset), Path(inp.extracted),
                                                competition.slug, threads, Path(p.notebook_log), Path(work))  # fmt: skip
        mine = pd.read_csv(written)
    mine.to_csv(out.submission, index=False)
    differing = rehearse.differences(mine, pd.read_csv(inp.submission), pd.read_csv(inp.probabilities),
                                     recipe["submission"], competition.labels, settings.tolerance)  # fmt: skip
    differing.to_csv(out.differences, index=False)
    budget = competition.notebook_budget
    projection = rehearse.Projection(timing["clips"], timing["seconds"], budget.hidden_test_clips, budget.minutes,
                                     threads)  # fmt: skip
    summary = {"clips": len(mine), "rows_differing": len(differing), "tolerance": settings.tolerance, **timing,
               "projected_minutes": round(projection.minutes, 2), "budget_minutes": budget.minutes,
               "hidden_test_clips": budget.hidden_test_clips}  # fmt: skip
    Path(out.summary).write_text(json.dumps(summary, indent=1))
    if len(differing):
        raise rehearse.RehearsalError(
            f"the notebook's submission differs from the DAG's in {len(differing)} of {len(mine)} rows beyond "
            f"{settings.tolerance:g}, e.g.\n{differing.head(5).to_string(index=False)}",
            f"all of them: {out.differences}; the notebook's output: {p.notebook_log}")  # fmt: skip
    log.info("the notebook's submission is the DAG's (%d rows; tolerance %g)", len(mine), settings.tolerance)
    if not projection.fits:
        raise rehearse.RehearsalError(
            f"the notebook would take {projection.describe()}",
            f"drop members or folds, or TTA shifts (training.tta_shift_ms); the members' time: "
            f"{rehearse.what_to_drop(pd.read_csv(inp.export))}")  # fmt: skip
    log.info("time: %s", projection.describe())
