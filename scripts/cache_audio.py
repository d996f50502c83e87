"""Rule cache_audio: decode every clip once into memory-mappable int16 arrays."""

from pathlib import Path

import pandas as pd

from wavefold import cache
from wavefold.audio import AudioPolicy
from wavefold.steps import rule_step

with rule_step(snakemake, "cache_audio") as log:
    inp, out = snakemake.input, snakemake.output
    root = Path(inp.root)  # the extracted competition
    policy = AudioPolicy.from_config(snakemake.params.audio)
    for split in ("train", "test"):
        paths = pd.read_csv(inp[split])["path"].tolist()
        cache.write_clips(root, paths, Path(out[split]), policy, snakemake.threads, f"caching {split}")
    noise = cache.write_noise(root, pd.read_csv(inp.noise), Path(out.noise), policy)
    noise.to_csv(out.noise_table, index=False)
