# The report's figures and tables ('snakemake --report results/report.zip' collects them with the CV
# and blend tables): confusion matrix, per-class accuracy, the most confidently wrong OOF clips,
# train vs test label mix and pseudo-label counts. The history of submissions is the submit rule's:
# 'snakemake --report results/report.zip all submit' adds it once something was submitted.
rule report_figures:
    input:
        unpack(get_report_extras),
        folds=rules.folds.output.folds,
        silence=rules.folds.output.silence,
        final_oof=rules.final_round.output.oof,
        final_test=rules.final_round.output.test,
        final_round=rules.final_round.output.rounds,
        cv=expand("results/cv/round{round}/cv.csv", round=ROUNDS),
        candidates=expand("results/blend/round{round}/candidates.csv", round=ROUNDS),
        pseudo=expand("results/pseudo/round{round}/summary.csv", round=ROUNDS[:-1]),
        code=rule_code("report_figures"),
    output:
        confusion=report("results/report/confusion.png", category="4. Errors", caption="../report/confusion.rst"),
        confusion_table=report(
            "results/report/confusion.csv",
            category="4. Errors",
            caption="../report/confusion.rst",
        ),
        per_class=report("results/report/per_class.csv", category="4. Errors", caption="../report/per_class.rst"),
        wrong=report(
            "results/report/confidently_wrong.csv",
            category="4. Errors",
            caption="../report/confidently_wrong.rst",
        ),
        mix=report("results/report/label_mix.csv", category="5. Label mix", caption="../report/mix.rst"),
        mix_plot=report("results/report/label_mix.png", category="5. Label mix", caption="../report/mix.rst"),
        cv_plot=report("results/report/cv.png", category="1. Cross-validation", caption="../report/cv.rst"),
        pseudo=report(
            "results/report/pseudo_labels.csv",
            category="3. Pseudo-labels",
            caption="../report/pseudo.rst",
        ),
    log:
        "logs/report_figures.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        rounds=ROUNDS,
        competition=COMPETITION,
    script:
        "../scripts/report_figures.py"


# What made these results: the git commit, the installed packages, the resolved configuration, Python,
# the platform and, for the demo, the espeak-ng that spoke it (from the demo's manifest).
rule provenance:
    input:
        unpack(get_provenance_input),
        code=rule_code("provenance"),
    output:
        commit="results/provenance/commit.txt",
        packages="results/provenance/pip-freeze.txt",
        config="results/provenance/config.yaml",
        system="results/provenance/system.txt",
    log:
        "logs/provenance.log",
    localrule: True
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        commit=GIT_COMMIT,
        config=config,
    script:
        "../scripts/provenance.py"
