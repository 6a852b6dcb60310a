# One command for a single run and for a pack (train-pack trains one run alone), with
# params derived from the outputs or the same for every job: Snakemake's code and params
# triggers then see no difference between the two, so a change of train.pack retrains
# no finished run (tests/workflow/test_packs_workflow.py).
# Each run's result line goes to Snakemake's output; the job's stderr to every run's log
# (fd 3 carries stdout past the pipe into tee).
TRAIN_SHELL = (
    "(python -m repro train-pack {params.flags} --threads {threads} --cache {input.cache:q}"
    " --gpu-slots {params.gpu_slots:q} 2>&1 >&3 3>&- | tee {log:q} > /dev/null) 3>&1"
)


rule train:
    input:
        cache=run_cache,
    output:
        **{key: f"{RUN}/{name}" for key, name in TRAINED_FILES.items()},
    log:
        repro_progress.TRAIN_LOG,
    conda:
        "../../envs/repro.yaml"
    threads: job_resource("train", "cpus_per_task")
    resources:
        **PARTITION,
        runtime=job_resource("train", "runtime"),
        mem_mb=job_resource("train", "mem_mb"),
        cpus_per_task=job_resource("train", "cpus_per_task"),
        gpu=job_resource("train", "gpu"),
        gpu_model=job_resource("train", "gpu_model"),
    params:
        flags=train_flags,
        gpu_slots=repro_progress.GPU_SLOTS,
    shell:
        TRAIN_SHELL


rule timing:
    input:
        cache=CACHE,
    output:
        "results/timing/{device}/timing.json",
    log:
        "logs/timing/{device}.log",
    conda:
        "../../envs/repro.yaml"
    threads: job_resource("timing", "cpus_per_task")
    resources:
        **PARTITION,
        runtime=job_resource("timing", "runtime"),
        mem_mb=job_resource("timing", "mem_mb"),
        cpus_per_task=job_resource("timing", "cpus_per_task"),
        gpu=job_resource("timing", "gpu"),
        gpu_model=job_resource("timing", "gpu_model"),
    params:
        run=lambda w: repro_grid.timing_description(config, w.device),
        gpu_slots=repro_progress.GPU_SLOTS,
    shell:
        "python -m repro timing --run {params.run:q} --threads {threads} --cache {input.cache:q}"
        " --out {output:q} --gpu-slots {params.gpu_slots:q} 2> {log:q}"
