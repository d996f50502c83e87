"""Rule export: the final blend's fold models as ONNX graphs, each checked against torch and timed."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from wavefold import competitions
from wavefold.cache import RowReader
from wavefold.kernel import export, package
from wavefold.steps import rule_step

with rule_step(snakemake, "export") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    competition, settings = competitions.get(p.competition), package.KernelSettings.from_config(p.settings)
    blend = json.loads(Path(inp.recipe).read_text())
    members = package.member_models(blend, p.models)
    left_out = sorted(set(blend["members"]) - set(members))
    log.info("round %d's blend (%s) needs %s; left out (no weight): %s", blend["round"],
             blend["combine"]["candidate"], ", ".join(members), ", ".join(left_out) or "none")  # fmt: skip
    reader = RowReader(inp.clips)
    clips = np.asarray(reader[np.arange(min(settings.check_clips, len(reader)))])
    model_files = {Path(path).parts[-4:-1]: path for path in inp.models}  # (round<r>, model, fold<k>) -> model.pt
    rows, folder = [], Path(out.models)
    for member, (round_, model) in members.items():
        for fold in p.folds:
            module, info = export.load_for_export(Path(model_files[f"round{round_}", model, f"fold{fold}"]), competition)
            path = folder / Path(package.onnx_name(member, fold)).name
            export.to_onnx(module, clips[:2].astype(np.float32) / np.float32(32768.0), path)
            check = export.check(module, path, clips, snakemake.threads)
            if check.max_difference > export.TOLERANCE:
                raise export.ExportError(f"{path.name}: its probabilities differ from torch's by {check.max_difference:.2e} "
                                         f"on {len(clips)} test clips (tolerance {export.TOLERANCE:g})")  # fmt: skip
            rows.append({"member": member, "round": round_, "model": model, "fold": fold, **info,
                         "file": path.name, **vars(check)})  # fmt: skip
    table = pd.DataFrame(rows)
    table.to_csv(out.table, index=False, float_format="%.6g")
    log.info("exported and checked on %d test clips:\n%s", len(clips), table.to_string(index=False))
