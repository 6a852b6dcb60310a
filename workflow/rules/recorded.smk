# Recorded runs (config key `recorded`): copy each run, timing and the recording's
# provenance from the recorded folder instead of training. common.smk has already
# checked the folder against the config; repro.plan.recorded refuses unsafe files again.


localrules:
    recorded_run,
    recorded_timing,
    recorded_meta,


# Each stage's stderr goes to its log; when it fails, its one-line `error: ...` (or a
# traceback's last line) is printed to Snakemake's output too, not only the log.


rule recorded_run:
    input:
        lambda w: [f"{RECORDED.folder}/{RUN.format(**w)}/{name}" for name in RUN_FILES],
    output:
        **{name.replace(".", "_"): f"{RUN}/{name}" for name in RUN_FILES},
    log:
        "logs/recorded/{head}/lr{lr}/{device}/seed{seed}/{hash}.log",
    conda:
        "../../envs/repro.yaml"
    params:
        folder=RECORDED.folder,
        run=lambda w: RUN.format(**w),
        outdir=lambda w, output: Path(output.metrics_json).parent,
    shell:
        "python -m repro recorded run --folder {params.folder:q} --run {params.run:q}"
        " --out {params.outdir:q} 2> {log:q}"
        " || (grep -m 1 '^error: ' {log:q} >&2 || tail -n 1 {log:q} >&2; exit 1)"


rule recorded_timing:
    input:
        f"{RECORDED.folder}/results/timing/{{device}}/timing.json",
    output:
        "results/timing/{device}/timing.json",
    log:
        "logs/recorded/timing/{device}.log",
    conda:
        "../../envs/repro.yaml"
    params:
        folder=RECORDED.folder,
    shell:
        "python -m repro recorded timing --folder {params.folder:q} --device {wildcards.device:q}"
        " --out {output:q} 2> {log:q}"
        " || (grep -m 1 '^error: ' {log:q} >&2 || tail -n 1 {log:q} >&2; exit 1)"


rule recorded_meta:
    input:
        f"{RECORDED.folder}/provenance.json",
        metrics=[f"{RECORDED.folder}/{RUN.format(**r)}/metrics.json" for r in RUNS],
    output:
        provenance="results/recorded/provenance.json",
        data="results/recorded/data.json",
    log:
        "logs/recorded/meta.log",
    conda:
        "../../envs/repro.yaml"
    params:
        folder=RECORDED.folder,
        runs=[RUN.format(**r) for r in RUNS],
    shell:
        "python -m repro recorded meta --folder {params.folder:q} --runs {params.runs:q}"
        " --out-dir results/recorded 2> {log:q}"
        " || (grep -m 1 '^error: ' {log:q} >&2 || tail -n 1 {log:q} >&2; exit 1)"
