# Generate the synthetic demo competition: the download zip Kaggle would serve, and the hidden
# solution and the manifest (what was generated, by which tools: the espeak-ng version) beside it.
rule demo_competition:
    input:
        code=get_demo_code(),
    output:
        zip=f"{RESOURCES}/download/{COMPETITION}.zip",
        solution=f"{RESOURCES}/solution.csv",
        manifest=f"{RESOURCES}/manifest.json",
    log:
        "logs/demo_competition.log",
    benchmark:
        "benchmarks/demo_competition.tsv"
    conda:
        "../envs/wavefold.yaml"
    threads: 8
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        size=config["demo"]["size"],
        shift=config["demo"]["shift"],
        seed=SEED,
        competition=COMPETITION,
    script:
        "../scripts/demo_competition.py"


# Retrieve the competition's archives (Kaggle, the demo or a local path) and verify them.
rule download:
    input:
        unpack(get_download_input),
        code=rule_code("download"),
    output:
        archives=ARCHIVES,
    log:
        "logs/download.log",
    benchmark:
        "benchmarks/download.tsv"
    localrule: True
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        source=SOURCE,
        competition=COMPETITION,
    script:
        "../scripts/download.py"
