# Unpack the competition's download and check the layout of what came out.
rule extract:
    input:
        archives=ARCHIVES,
        code=rule_code("extract"),
    output:
        root=directory(f"{RESOURCES}/extracted"),
    log:
        "logs/extract.log",
    benchmark:
        "benchmarks/extract.tsv"
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        competition=COMPETITION,
    script:
        "../scripts/extract.py"


# Check every clip (decodable, rate, channels, bit depth, length) and write the manifests and the
# problems file.
rule index:
    input:
        root=rules.extract.output.root,
        code=rule_code("index_audio"),
    output:
        train="results/index/train.csv",
        test="results/index/test.csv",
        noise="results/index/noise.csv",
        problems="results/index/problems.csv",
    log:
        "logs/index.log",
    benchmark:
        "benchmarks/index.tsv"
    conda:
        "../envs/wavefold.yaml"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        audio=get_audio_policy(),
        competition=COMPETITION,
    script:
        "../scripts/index_audio.py"


# Decode every clip once into int16 arrays that training reads memory-mapped.
rule cache_audio:
    input:
        train=rules.index.output.train,
        test=rules.index.output.test,
        noise=rules.index.output.noise,
        root=rules.extract.output.root,
        code=rule_code("cache_audio"),
    output:
        train="results/cache/train.npy",
        test="results/cache/test.npy",
        noise="results/cache/noise.npy",
        noise_table="results/cache/noise.csv",
    log:
        "logs/cache_audio.log",
    benchmark:
        "benchmarks/cache_audio.tsv"
    conda:
        "../envs/wavefold.yaml"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=90,
    params:
        audio=get_audio_policy(),
    script:
        "../scripts/cache_audio.py"
