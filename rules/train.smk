# Train one model on one fold: the kept epoch's weights (training.defaults.epoch_selection), out-of-fold
# probabilities made with the test predictions' TTA, learning curve and per-class metrics. A killed job
# resumes from its last checkpoint; a finished job removes it, so a re-run always trains afresh.
rule train:
    input:
        unpack(get_pseudo_training_input),
        unpack(get_weights_input),
        clips=rules.cache_audio.output.train,
        noise=rules.cache_audio.output.noise,
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        noise_segments=rules.folds.output.noise_segments,
        variants=rules.augment.output.variants,
        variant_table=rules.augment.output.table,
        code=get_training_code,
    output:
        model="results/train/round{round}/{model}/fold{fold}/model.pt",
        oof="results/train/round{round}/{model}/fold{fold}/oof.csv",
        curve="results/train/round{round}/{model}/fold{fold}/curve.csv",
        metrics="results/train/round{round}/{model}/fold{fold}/metrics.csv",
    log:
        "logs/train/round{round}/{model}/fold{fold}.log",
    benchmark:
        "benchmarks/train/round{round}/{model}/fold{fold}.tsv"
    conda:
        "../envs/wavefold.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=get_training_runtime,
    params:
        settings=get_model_settings,
        weights_sha256=get_weights_hash,
        seed=SEED,
        device=TRAINING["device"],
        tta_shift_ms=TRAINING["tta_shift_ms"],
        sample_rate=AUDIO["sample_rate"],
        checkpoint="results/train/round{round}/{model}/fold{fold}/checkpoint/last.pt",
        competition=COMPETITION,
    script:
        "../scripts/train.py"


# Test-set probabilities of one fold model, with test-time augmentation; streamed in batches from
# the memory-mapped cache, so the test set is never in memory at once.
rule predict_test:
    input:
        model=rules.train.output.model,
        clips=rules.cache_audio.output.test,
        index=rules.index.output.test,
        code=get_prediction_code,
    output:
        "results/predict/round{round}/{model}/fold{fold}.csv",
    log:
        "logs/predict_test/round{round}/{model}/fold{fold}.log",
    benchmark:
        "benchmarks/predict_test/round{round}/{model}/fold{fold}.tsv"
    conda:
        "../envs/wavefold.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        tta_shift_ms=TRAINING["tta_shift_ms"],
        sample_rate=AUDIO["sample_rate"],
        device=TRAINING["device"],
        competition=COMPETITION,
    script:
        "../scripts/predict_test.py"


# A model's test probabilities: the mean of its fold models.
rule average_folds:
    input:
        predictions=get_fold_predictions,
        code=rule_code("average_folds"),
    output:
        "results/predict/round{round}/{model}.csv",
    log:
        "logs/average_folds/round{round}/{model}.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/average_folds.py"


# Cross-validation per model in the competition's metric: per fold, mean and standard deviation; per-class recall.
rule cv_table:
    input:
        oof=get_round_oof_files,
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        code=rule_code("cv_table"),
    output:
        cv=report(
            "results/cv/round{round}/cv.csv",
            category="1. Cross-validation",
            subcategory="round {round}",
            caption="../report/cv_table.rst",
        ),
        per_class=report(
            "results/cv/round{round}/per_class.csv",
            category="1. Cross-validation",
            subcategory="round {round}",
            caption="../report/per_class.rst",
        ),
    log:
        "logs/cv_table/round{round}.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        competition=COMPETITION,
    script:
        "../scripts/cv_table.py"
