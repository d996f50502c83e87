# wavefold: a Kaggle audio competition from download to a checked, scored submission.
#
# Paths say what they hold: resources/<dataset>/ is what was retrieved (archives, extracted audio;
# <dataset> is the competition, or demo-<size>-seed<seed>), results/<stage>/ what was computed,
# logs/<rule>.log and benchmarks/<rule>.tsv how each step went.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/audio.smk"
include: "rules/folds.smk"
include: "rules/augment.smk"
include: "rules/weights.smk"
include: "rules/train.smk"
include: "rules/blend.smk"
include: "rules/submit.smk"
include: "rules/report.smk"
include: "rules/kernel.smk"
include: "rules/track.smk"
include: "rules/tune.smk"


onsuccess:
    end_tracked_invocation("FINISHED")


onerror:
    end_tracked_invocation("FAILED")


rule all:
    default_target: True
    input:
        rules.folds.output,
        expand("results/cv/round{round}/cv.csv", round=ROUNDS),
        expand("results/blend/round{round}/candidates.csv", round=ROUNDS),
        expand("results/pseudo/round{round}/summary.csv", round=ROUNDS[:-1]),
        rules.submission.output,
        rules.score_local.output if SOURCE == "demo" else [],
        rules.report_figures.output,
        rules.provenance.output,
        rules.track.output if TRACKING["mlflow"] else [],
        rules.rehearse.output if SUBMIT_KIND == "notebook" else [],
