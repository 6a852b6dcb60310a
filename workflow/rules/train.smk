rule train:
    input:
        cache=run_cache,
    output:
        epochs=f"{RUN}/epochs.csv",
        steps=f"{RUN}/steps.csv",
        times=f"{RUN}/epoch_times.csv",
        confusion=f"{RUN}/confusion.csv",
        confusion_by_epoch=f"{RUN}/confusion_by_epoch.csv",
        predictions=f"{RUN}/predictions.csv",
        weights=f"{RUN}/model.pt",
        metrics=f"{RUN}/metrics.json",
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
        run=run_description,
        outdir=lambda w, output: Path(output.metrics).parent,
        checkpoint=repro_progress.CHECKPOINT,
        progress=repro_progress.PROGRESS,
    shell:
        "python -m repro train --run {params.run:q} --threads {threads} --cache {input.cache:q}"
        " --out {params.outdir:q} --checkpoint {params.checkpoint:q}"
        " --progress {params.progress:q} 2> {log:q}"


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
    shell:
        "python -m repro timing --run {params.run:q} --threads {threads} --cache {input.cache:q}"
        " --out {output:q} 2> {log:q}"
