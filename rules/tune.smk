# 'snakemake tune': Optuna's TPE searches one model's settings (tune.model, tune.space) on a cheap
# proxy of the real training job: one fold, few epochs, a share of the training speakers, each trial
# scored on the held-out fold. The study (results/tune/study.db) survives the job: a larger
# tune.trials resumes it. Writes the best settings as a config fragment. Never part of 'all'.
rule tune:
    input:
        **get_tuning_weights(),
        clips=rules.cache_audio.output.train,
        noise=rules.cache_audio.output.noise,
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        noise_segments=rules.folds.output.noise_segments,
        variants=rules.augment.output.variants,
        variant_table=rules.augment.output.table,
        code=get_tuning_code(),
    output:
        best="results/tune/best.yaml",
        trials="results/tune/trials.csv",
    log:
        "logs/tune.log",
    conda:
        "../envs/wavefold.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=TRAINING["runtime_minutes"],
    params:
        model=TUNE["model"],
        settings=get_model_settings(SimpleNamespace(round=1, model=TUNE["model"])),
        space=TUNE["space"],
        trials=TUNE["trials"],
        fold=TUNE["fold"],
        epochs=TUNE["epochs"],
        train_share=TUNE["train_share"],
        storage="results/tune/study.db",
        seed=SEED,
        device=TRAINING["device"],
        competition=COMPETITION,
    script:
        "../scripts/tune.py"
