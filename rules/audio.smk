rule extract:
    """Unpack the three archives and check the layout of what came out."""
    input:
        archives=ARCHIVES,
        code=package_files("sources", "archives"),
    output:
        train=directory(f"{RESOURCES}/train"),
        test=directory(f"{RESOURCES}/test"),
        sample_submission=f"{RESOURCES}/sample_submission.csv",
    params:
        root=RESOURCES,
    log:
        "logs/extract.log",
    benchmark:
        "benchmarks/extract.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/wavefold.yaml"
    script:
        "../scripts/extract.py"


rule index:
    """Check every clip (decodable, rate, channels, bit depth, length) and write the manifests and
    the problems file."""
    input:
        train=rules.extract.output.train,
        test=rules.extract.output.test,
        code=package_files("audio", "index", "labels"),
    output:
        train="results/index/train.csv",
        test="results/index/test.csv",
        noise="results/index/noise.csv",
        problems="results/index/problems.csv",
    params:
        root=RESOURCES,
        audio=get_audio_policy(),
    log:
        "logs/index.log",
    benchmark:
        "benchmarks/index.tsv"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/wavefold.yaml"
    script:
        "../scripts/index_audio.py"


rule cache_audio:
    """Decode every clip once into int16 arrays that training reads memory-mapped."""
    input:
        train=rules.index.output.train,
        test=rules.index.output.test,
        noise=rules.index.output.noise,
        code=package_files("audio", "cache"),
    output:
        train="results/cache/train.npy",
        test="results/cache/test.npy",
        noise="results/cache/noise.npy",
        noise_table="results/cache/noise.csv",
    params:
        root=RESOURCES,
        audio=get_audio_policy(),
    log:
        "logs/cache_audio.log",
    benchmark:
        "benchmarks/cache_audio.tsv"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=90,
    conda:
        "../envs/wavefold.yaml"
    script:
        "../scripts/cache_audio.py"
