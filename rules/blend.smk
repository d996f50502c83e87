# Blend one round's models: every candidate (each model, mean, weights for log-loss and for accuracy,
# stacking) scored by CV over the folds; the best one applied to the test probabilities.
rule blend:
    input:
        unpack(get_blend_input),
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        test_index=rules.index.output.test,
        code=package_files("blend"),
    output:
        oof="results/blend/round{round}/oof.csv",
        test="results/blend/round{round}/test.csv",
        candidates=report(
            "results/blend/round{round}/candidates.csv",
            category="2. Blend",
            subcategory="round {round}",
            caption="../report/blend.rst",
        ),
        weights=report(
            "results/blend/round{round}/weights.csv",
            category="2. Blend",
            subcategory="round {round}",
            caption="../report/blend.rst",
        ),
    log:
        "logs/blend/round{round}.log",
    benchmark:
        "benchmarks/blend/round{round}.tsv"
    conda:
        "../envs/wavefold.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        settings=get_blend_settings(),
        models=MODELS,
        external=list(BLEND["external"]),
    script:
        "../scripts/blend.py"


# Confident test predictions of a round's blend, on which every model agrees, capped per class: the
# next round's extra training clips.
rule pseudo_label:
    input:
        blend=rules.blend.output.test,
        models=get_round_test_predictions,
        test_index=rules.index.output.test,
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        code=package_files("pseudo"),
    output:
        pseudo="results/pseudo/round{round}/pseudo.csv",
        summary="results/pseudo/round{round}/summary.csv",
    log:
        "logs/pseudo_label/round{round}.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        settings=get_pseudo_settings(),
        models=MODELS,
    script:
        "../scripts/pseudo_label.py"
