rule demo_competition:
    """Generate the synthetic demo competition: the download zip Kaggle would serve, and the
    hidden solution beside it."""
    output:
        zip=f"{RESOURCES}/download/{COMPETITION}.zip",
        solution=f"{RESOURCES}/solution.csv",
    params:
        size=config["demo"]["size"],
        seed=SEED,
        competition=COMPETITION,
    input:
        code=package_files("demo", "archives"),
    log:
        "logs/demo_competition.log",
    benchmark:
        "benchmarks/demo_competition.tsv"
    threads: 8
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/wavefold.yaml"
    script:
        "../scripts/demo_competition.py"


rule download:
    """Retrieve the competition's archives (Kaggle, the demo or a local path) and verify them."""
    localrule: True
    input:
        unpack(get_download_input),
        code=package_files("sources", "archives", "kaggle_api"),
    output:
        archives=ARCHIVES,
    params:
        source=SOURCE,
        competition=COMPETITION,
        retries=config["kaggle"]["retries"],
        backoff_seconds=config["kaggle"]["backoff_seconds"],
    log:
        "logs/download.log",
    resources:
        mem_mb=1000,
        runtime=240,
    conda:
        "../envs/wavefold.yaml"
    script:
        "../scripts/download.py"
