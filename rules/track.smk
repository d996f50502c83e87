# Experiment tracking (tracking.mlflow), the last step: the jobs log themselves live where they
# reach the store; this logs what none logged (jobs on other machines with an SQLite store, jobs
# run while tracking was off) from their files, and the run's CV and hidden scores on the
# invocation's parent run. See scripts/wavefold/tracking/.
rule track:
    input:
        unpack(get_tracking_input),
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
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
        jobs=get_tracking_jobs(),
        rounds=ROUNDS,
        competition=COMPETITION,
        # Read from the config; params too, so that a new store gets every run logged into it.
        store=[TRACKING["uri"], TRACKING["experiment"]],
    script:
        "../scripts/track.py"
