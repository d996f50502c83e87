# Blend one round's models (blend.across_rounds: and the earlier rounds'): every candidate (each
# model, mean, weights for log-loss and for accuracy, stacking) scored by CV over the folds; the best
# one applied to the test probabilities, and, fold by fold, fitted without that fold and applied to
# its own fold models (for the pseudo-labels).
rule blend:
    input:
        unpack(get_blend_input),
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        test_index=rules.index.output.test,
        code=rule_code("blend"),
    output:
        oof="results/blend/round{round}/oof.csv",
        test="results/blend/round{round}/test.csv",
        fold_tests=expand("results/blend/round{{round}}/test_fold{fold}.csv", fold=FOLDS),
        candidate_labels="results/blend/round{round}/candidate_labels.csv",
        recipe="results/blend/round{round}/recipe.json",  # the chosen blend as data (a notebook applies it)
        label_mix=report(
            "results/blend/round{round}/label_mix.csv",
            category="2. Blend",
            subcategory="round {round}",
            caption="../report/label_mix.rst",
        ),
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
        shift=report(
            "results/blend/round{round}/shift.csv",
            category="2. Blend",
            subcategory="round {round}",
            caption="../report/shift.rst",
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
        models=get_blend_members,
        external=list(BLEND["external"]),
        folds=FOLDS,
        competition=COMPETITION,
    script:
        "../scripts/blend.py"


# Pseudo-labels for the next round, one table per fold: the clips that will train round r+1's fold-k
# models are labelled by round r's fold-k models only (which never saw fold k's labels), combined by
# the blend fitted without fold k — confident, agreed by every model, capped per class.
rule pseudo_label:
    input:
        unpack(get_pseudo_label_input),
        test_index=rules.index.output.test,
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        code=rule_code("pseudo_label"),
    output:
        folds=expand("results/pseudo/round{{round}}/fold{fold}.csv", fold=FOLDS),
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
        folds=FOLDS,
        competition=COMPETITION,
    script:
        "../scripts/pseudo_label.py"


# The round whose blend is submitted (blend.final_round): the last, unless an earlier round's blend
# has a CV better by more than the fold-to-fold noise. Its tables are copied to results/final/.
rule final_round:
    input:
        unpack(get_final_round_input),
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        code=rule_code("final_round"),
    output:
        oof="results/final/oof.csv",
        test="results/final/test.csv",
        candidates="results/final/candidates.csv",
        label_mix="results/final/label_mix.csv",
        recipe="results/final/recipe.json",
        rounds=report("results/final/rounds.csv", category="2. Blend", caption="../report/rounds.rst"),
    log:
        "logs/final_round.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        rounds=ROUNDS,
        how=BLEND["final_round"],
        choose_by=BLEND["choose_by"],
        noise_se=BLEND["choice_noise_se"],
        competition=COMPETITION,
    script:
        "../scripts/final_round.py"
