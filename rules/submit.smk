# The submission: the chosen round's blend (final_round) as fname,label, checked against sample_submission.csv
# (same clips, each once, valid labels) before it is written.
rule submission:
    input:
        blend=rules.final_round.output.test,
        extracted=rules.extract.output.root,  # its sample_submission.csv
        code=rule_code("submission"),
    output:
        submission="results/submission/submission.csv",
        digest="results/submission/submission.sha256",
    log:
        "logs/submission.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        competition=COMPETITION,
    script:
        "../scripts/submission.py"


# The demo's score without submitting: the submission against the demo's hidden solution, and every
# round's blend and models beside their CV — where the two disagree, the CV is what needs fixing.
rule score_local:
    input:
        unpack(get_local_score_input),
        submission=rules.submission.output.submission,
        solution=rules.demo_competition.output.solution,
        code=rule_code("score_local"),
    output:
        score="results/submission/local_score.json",
        table=report(
            "results/submission/local_scores.csv",
            category="1. Cross-validation",
            caption="../report/local_scores.rst",
        ),
        label_mix=report(
            "results/submission/label_mix.csv",
            category="1. Cross-validation",
            caption="../report/label_mix_hidden.rst",
        ),
    log:
        "logs/score_local.log",
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        rounds=ROUNDS,
        competition=COMPETITION,
    script:
        "../scripts/score_local.py"


# 'snakemake submit': upload the submission (Kaggle, or the local scorer for the demo), wait for the
# score and append it to results/submissions.csv, the history of every submission (kept across runs:
# update(), which Snakemake restores if the job fails) and its plot. For a notebook (submit.kind), the
# rehearsed package: the Dataset, the notebook, then the code submission (the local scorer scores what
# the rehearsed notebook wrote). Never part of 'all'; runs where there is internet.
rule submit:
    input:
        unpack(get_submit_input),
        submission=rules.submission.output.submission,
        digest=rules.submission.output.digest,
        extracted=rules.extract.output.root,  # its sample_submission.csv
        candidates=rules.final_round.output.candidates,
        code=rule_code("submit"),
    output:
        record="results/submit/last.json",
        history=update(SUBMISSIONS_LOG),
        history_plot=report(
            "results/report/submissions.png",
            category="6. Submissions",
            caption="../report/submissions.rst",
        ),
    log:
        "logs/submit.log",
    localrule: True
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        to=SUBMIT_TO,
        kind=SUBMIT_KIND,
        kernel=KERNEL,
        competition=COMPETITION,
        wait_minutes=config["submit"]["wait_minutes"],
        dataset_wait_minutes=config["submit"]["dataset_wait_minutes"],
        notebook_wait_minutes=config["submit"]["notebook_wait_minutes"],
        poll_seconds=config["submit"]["poll_seconds"],
    script:
        "../scripts/submit.py"
