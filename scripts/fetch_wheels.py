"""Rule fetch_wheels: the wheels the notebook installs offline, for Kaggle's Python and platform."""

from pathlib import Path

from wavefold.kernel import package, wheels
from wavefold.steps import rule_step

with rule_step(snakemake, "fetch_wheels") as log:
    settings = package.KernelSettings.from_config(snakemake.params.settings)
    found = wheels.fetch(settings.wheels, Path(snakemake.output[0]), settings.python, settings.platform,
                         settings.wheels_from)  # fmt: skip
    log.info("%d wheels for Python %s on %s from %s: %s", len(found), settings.python, settings.platform,
             settings.wheels_from, ", ".join(p.name for p in found))  # fmt: skip
