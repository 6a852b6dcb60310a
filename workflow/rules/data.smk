# One cache per data variant (the reference's and, e.g., its JPEG re-encodes): the tag
# names the source, subset and quality (repro.plan.dataset.data_tag).
rule prepare_data:
    input:
        archive=lambda w: (
            [cache_config(w)["data"]["archive"]] if w.tag.startswith("archive") else []
        ),
    output:
        cache="resources/data/cifar10-{tag}.npz",
        meta="resources/data/cifar10-{tag}.json",
    log:
        "logs/prepare_data/{tag}.log",
    conda:
        "../../envs/repro.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        flags=lambda w: repro_resources.prepare_flags(cache_config(w)),
    shell:
        "python -m repro prepare {params.flags} --out {output.cache:q} 2> {log:q}"
