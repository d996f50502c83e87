# Experiment tracking (tracking.mlflow): the finished run's training jobs (settings, per-epoch
# curves, final accuracy), CV and blends logged to an MLflow store, one child run per model, fold
# and round; 'mlflow ui' shows them side by side with earlier runs. One writer, after training: see
# scripts/wavefold/tracking.py for why.
rule track:
    input:
        unpack(get_tracking_input),
        code=rule_code("track"),
    output:
        runs="results/tracking/mlflow_runs.csv",
    log:
        "logs/track.log",
    localrule: True
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        uri=TRACKING["uri"],
        experiment=TRACKING["experiment"],
        jobs=get_tracking_jobs(),
        config=config,
        dataset=DATASET,
        commit=GIT_COMMIT,
    script:
        "../scripts/track.py"
