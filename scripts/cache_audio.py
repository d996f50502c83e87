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
        manifest = pd.read_csv(inp[split])
        windows = cache.ClipWindows.of_manifest(manifest)
        cache.write_clips(root, manifest["path"].tolist(), Path(out[split]), policy, snakemake.threads,
                          f"caching {split}", windows)  # fmt: skip
    noise = cache.write_noise(root, pd.read_csv(inp.noise), Path(out.noise), policy)
    noise.to_csv(out.noise_table, index=False)
