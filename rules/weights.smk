# Pretrained weights from timm (a model's params.pretrained: timm), saved as a file where the workflow
# runs: the one machine that needs internet (or timm's Hugging Face cache, with HF_HUB_OFFLINE=1).
# The training jobs read the file, so compute nodes need neither.
rule fetch_weights:
    input:
        code=rule_code("fetch_weights"),
    output:
        "resources/weights/timm/{backbone}.safetensors",
    log:
        "logs/fetch_weights/{backbone}.log",
    localrule: True
    conda:
        "../envs/wavefold.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/fetch_weights.py"
