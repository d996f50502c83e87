"""Rule provenance: the git commit, pip freeze and resolved configuration of this run."""

import yaml

from wavefold import provenance
from wavefold.steps import rule_step

with rule_step(snakemake, "provenance") as log:
    out, p = snakemake.output, snakemake.params
    with open(out.commit, "w") as handle:
        handle.write(f"{p.commit}\nconfig {provenance.config_hash(p.config)}\n")
    with open(out.packages, "w") as handle:
        handle.write(provenance.pip_freeze())
    with open(out.config, "w") as handle:
        yaml.safe_dump(p.config, handle, sort_keys=True)
    log.info("commit %s, config %s", p.commit, provenance.config_hash(p.config))
