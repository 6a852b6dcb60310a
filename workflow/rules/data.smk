rule prepare_data:
    input:
        archive=lambda w: (
            [config["data"]["archive"]]
            if repro_dataset.data_tag(config).startswith("archive")
            else []
        ),
    output:
        cache=CACHE,
        meta=CACHE.replace(".npz", ".json"),
    log:
        "logs/prepare_data.log",
    conda:
        "../../envs/repro.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        flags=repro_resources.prepare_flags(config),
    shell:
        "python -m repro prepare {params.flags} --out {output.cache:q} 2> {log:q}"
