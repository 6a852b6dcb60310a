# Packs (config key train.pack, cuda only): one job trains the runs of one pack at once,
# each into its own folder, log, progress file and checkpoint, as `train` would. A
# pack's rule names its runs' files, without wildcards; Snakemake prefers such a rule to
# the wildcard rule `train`, which trains every run that is in no pack.


for _pack in PACKS:
    _first, _runs = _pack[0], len(_pack)
    _resources = repro_resources.job_resources(config, "train", _first["device"], _runs)

    rule:
        name:
            repro_grid.pack_name(_pack)
        input:
            cache=repro_grid.run_cache(config, _first["device"], _first["hash"]),
        output:
            [
                f"{RUN.format(**r)}/{file}"
                for r in _pack
                for file in TRAINED_FILES.values()
            ],
        log:
            [repro_progress.TRAIN_LOG.format(**r) for r in _pack],
        conda:
            "../../envs/repro.yaml"
        threads: _resources["cpus_per_task"]
        resources:
            **repro_resources.partition_resource(config, _first["device"]),
            **{key: _resources[key] for key in repro_resources.JOB_RESOURCE_KEYS},
        params:
            flags=train_flags,
            gpu_slots=repro_progress.GPU_SLOTS,
        shell:
            TRAIN_SHELL
