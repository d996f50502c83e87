# Speaker-grouped, stratified folds, and silence examples cut from each fold's own noise.
rule folds:
    input:
        train=rules.index.output.train,
        noise_table=rules.cache_audio.output.noise_table,
        code=rule_code("folds"),
    output:
        folds="results/folds/folds.csv",
        silence="results/folds/silence.csv",
        noise_segments="results/folds/noise_segments.csv",
        summary="results/folds/summary.csv",
    log:
        "logs/folds.log",
    benchmark:
        "benchmarks/folds.tsv"
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        n_folds=config["folds"]["n_folds"],
        silence_share=config["folds"]["silence_share"],
        seed=SEED,
        clip_samples=CLIP_SAMPLES,
        competition=COMPETITION,
    script:
        "../scripts/folds.py"
