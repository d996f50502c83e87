# wavefold: a Kaggle audio competition from download to trained fold models and their test predictions.
#
# Paths say what they hold: resources/<dataset>/ is what was retrieved (archives, extracted audio;
# <dataset> is the competition, or demo-<size>-seed<seed>), results/<stage>/ what was computed,
# logs/<rule>.log and benchmarks/<rule>.tsv how each step went.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/audio.smk"
include: "rules/folds.smk"
include: "rules/augment.smk"
include: "rules/train.smk"


rule all:
    default_target: True
    input:
        rules.folds.output,
        expand("results/cv/round{round}/cv.csv", round=ROUNDS),
        expand("results/predict/round{round}/{model}.csv", round=ROUNDS, model=MODELS),
