# Offline augmentation: speed, pitch and tempo variants of every training clip, cached beside the
# audio. A variant belongs to its source clip's fold and is only drawn on that fold's training side.
rule augment:
    input:
        clips=rules.cache_audio.output.train,
        code=rule_code("augment_offline"),
    output:
        variants="results/cache/augmented.npy",
        table="results/cache/augmented.csv",
    log:
        "logs/augment.log",
    benchmark:
        "benchmarks/augment.tsv"
    conda:
        "../envs/wavefold.yaml"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        settings=config["offline_augment"],
        seed=SEED,
        sample_rate=AUDIO["sample_rate"],
    script:
        "../scripts/augment_offline.py"
