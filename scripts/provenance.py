"""Rule provenance: the git commit, pip freeze, resolved configuration and system of this run."""

import json

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
    demo = json.loads(open(snakemake.input.demo_manifest).read()) if "demo_manifest" in snakemake.input.keys() else None
    with open(out.system, "w") as handle:
        handle.write(provenance.system_description(demo))
    log.info("commit %s, config %s", p.commit, provenance.config_hash(p.config))
