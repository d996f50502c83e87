"""Rule pseudo_label: confident, agreed test predictions of a round's blend, capped per class."""

import pandas as pd

from wavefold import pseudo
from wavefold.settings import from_section
from wavefold.steps import rule_step

with rule_step(snakemake, "pseudo_label") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    settings = from_section(pseudo.PseudoSettings, p.settings, "pseudo_label")
    models = {name: pd.read_csv(path) for name, path in zip(p.models, inp.models)}
    labelled = pd.read_csv(inp.folds)["label"].value_counts()
    labelled["silence"] = len(pd.read_csv(inp.silence))
    taken, summary = pseudo.select(pd.read_csv(inp.blend), models, pd.read_csv(inp.test_index), labelled, settings)
    taken.to_csv(out.pseudo, index=False, float_format="%.6g")
    summary.to_csv(out.summary, index=False)
    log.info("per class (predicted, confident, agreed by all models, cap, taken):\n%s", summary.to_string(index=False))
