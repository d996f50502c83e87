# A code competition's notebook (README, "Code competitions"): the final blend's fold models exported
# to ONNX and checked against torch, packed with the blend as data into a Kaggle Dataset and a
# notebook, and the notebook rehearsed offline on the competition's test audio — its submission.csv
# must be the DAG's and its projected time must fit the competition's budget.


# Every fold model of every member the final blend gives weight, as an ONNX graph (waveform in,
# probabilities of the submission's labels out), each checked against torch on cached test clips.
rule export:
    input:
        unpack(get_export_input),
        recipe=rules.final_round.output.recipe,
        clips=rules.cache_audio.output.test,
        code=rule_code("export"),
    output:
        models=directory("results/kernel/models"),
        table=report("results/kernel/export.csv", category="7. Notebook", caption="../report/export.rst"),
    log:
        "logs/kernel/export.log",
    conda:
        "../envs/wavefold.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=MODELS,
        folds=FOLDS,
        settings=kernel_settings("check_clips"),
        competition=COMPETITION,
    script:
        "../scripts/export.py"


# The wheels the notebook installs offline (onnxruntime, for Kaggle's Python and platform); where the
# download runs, as the competition's download does.
rule fetch_wheels:
    output:
        directory(f"resources/wheels/python{KERNEL['python']}-{KERNEL['platform']}"),
    log:
        "logs/kernel/fetch_wheels.log",
    localrule: True
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        settings=kernel_settings("wheels", "wheels_from", "python", "platform"),
    script:
        "../scripts/fetch_wheels.py"


# The Kaggle Dataset (models, recipe.json, portable.py, wheels, dataset-metadata.json) and the notebook
# (inference.py, kernel-metadata.json with enable_internet: false written out).
rule package:
    input:
        models=rules.export.output.models,
        table=rules.export.output.table,
        recipe=rules.final_round.output.recipe,
        wheels=rules.fetch_wheels.output[0],
        code=rule_code("package"),
    output:
        dataset=directory("results/kernel/dataset"),
        notebook=directory("results/kernel/notebook"),
    log:
        "logs/kernel/package.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        audio=get_audio_policy(),
        tta_shift_ms=TRAINING["tta_shift_ms"],
        folds=FOLDS,
        models=MODELS,
        settings=kernel_settings("owner", "dataset_slug", "notebook_slug", "batch_clips", "enable_gpu"),
        competition=COMPETITION,
    script:
        "../scripts/package.py"


# The notebook run as Kaggle runs it, offline and without wavefold, on the competition's test audio:
# its submission.csv against the DAG's, and its time projected to the hidden test's size.
rule rehearse:
    input:
        dataset=rules.package.output.dataset,
        notebook=rules.package.output.notebook,
        extracted=rules.extract.output.root,
        submission=rules.submission.output.submission,
        probabilities=rules.final_round.output.test,
        export=rules.export.output.table,
        code=rule_code("rehearse"),
    output:
        submission="results/kernel/rehearsal/submission.csv",
        differences="results/kernel/rehearsal/differences.csv",
        summary=report(
            "results/kernel/rehearsal/summary.json", category="7. Notebook", caption="../report/rehearsal.rst"
        ),
    log:
        "logs/kernel/rehearse.log",
    conda:
        "../envs/wavefold.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        notebook_log="logs/kernel/notebook.log",
        settings=kernel_settings("threads", "tolerance"),
        competition=COMPETITION,
    script:
        "../scripts/rehearse.py"
