# What every reporting stage reads: the resolved config, each run's metrics and each
# device's timing (the runs' other files sit next to their metrics.json).
STUDY = {
    "config": "results/config.json",
    "runs": run_outputs("metrics.json"),
    "timing": timing_outputs(),
}


# Each stage's stderr goes to its log; when it fails, its one-line `error: ...` (or a
# traceback's last line) is printed to Snakemake's output too, not only the log.


rule write_config:
    # the param also makes Snakemake rerun this rule (and the report) when the config
    # changes; keys that shape no result are left out
    output:
        "results/config.json",
    log:
        "logs/write_config.log",
    conda:
        "../../envs/repro.yaml"
    params:
        cfg=repro_grid.result_config(config),
    script:
        "../scripts/write_config.py"


rule tables:
    input:
        **STUDY,
        epochs=run_outputs("epochs.csv"),
        confusion=run_outputs("confusion.csv"),
        predictions=run_outputs("predictions.csv"),
        data_meta=DATA_META,
    output:
        hyper="results/tables/hyperparameters.csv",
        accuracy=report(
            "results/tables/test_accuracy.csv",
            caption="../../report_templates/captions/test_accuracy.rst",
            category="Tables",
        ),
        comparison="results/tables/lr_comparison.csv",
        claims=report(
            "results/tables/claims.csv",
            caption="../../report_templates/captions/claims.rst",
            category="Tables",
        ),
        timing=report(
            "results/tables/timing.csv",
            caption="../../report_templates/captions/timing.rst",
            category="Tables",
        ),
        loss_floor="results/tables/loss_floor.csv",
    log:
        "logs/tables.log",
    conda:
        "../../envs/repro.yaml"
    shell:
        "python -m repro tables --config {input.config:q} --runs {input.runs:q}"
        " --timing {input.timing:q} --data-meta {input.data_meta:q}"
        " --out-dir results/tables 2> {log:q}"
        " || (grep -m 1 '^error: ' {log:q} >&2 || tail -n 1 {log:q} >&2; exit 1)"


rule figures:
    input:
        **STUDY,
        epochs=run_outputs("epochs.csv"),
        confusion=run_outputs("confusion.csv"),
        data_meta=DATA_META,
    output:
        **{
            f"{name}_{ext}": (
                report(
                    f"results/figures/{name}.{ext}",
                    caption=f"../../report_templates/captions/{name}.rst",
                    category="Figures",
                )
                if ext == "svg"
                else f"results/figures/{name}.{ext}"
            )
            for name in (
                "fig2_loss",
                "fig3_accuracy",
                "fig4_confusion",
                "fig5_timing",
                "fig6_effects",
                "fig7_train_test",
                "fig8_jpeg_cost",
            )
            for ext in ("svg", "png")
        },
    log:
        "logs/figures.log",
    conda:
        "../../envs/repro.yaml"
    shell:
        "python -m repro figures --config {input.config:q} --runs {input.runs:q}"
        " --timing {input.timing:q} --data-meta {input.data_meta:q}"
        " --out-dir results/figures 2> {log:q}"
        " || (grep -m 1 '^error: ' {log:q} >&2 || tail -n 1 {log:q} >&2; exit 1)"


rule provenance:
    input:
        **STUDY,
        data_meta=DATA_META,
        recorded=["results/recorded/provenance.json"] if RECORDED else [],
    output:
        "results/provenance.json",
    log:
        "logs/provenance.log",
    conda:
        "../../envs/repro.yaml"
    params:
        repo=workflow.basedir,
    shell:
        "python -m repro provenance --config {input.config:q} --runs {input.runs:q}"
        " --timing {input.timing:q} --data-meta {input.data_meta:q} --repo {params.repo:q}"
        " --recorded {input.recorded:q} --out {output:q} 2> {log:q}"
        " || (grep -m 1 '^error: ' {log:q} >&2 || tail -n 1 {log:q} >&2; exit 1)"


rule report:
    input:
        rules.tables.output,
        rules.figures.output,
        **STUDY,
        provenance="results/provenance.json",
        templates=sorted(map(str, Path(workflow.basedir).glob("report_templates/*.*"))),
    output:
        "results/report.pdf",
    log:
        "logs/report.log",
    conda:
        "../../envs/repro.yaml"
    shell:
        "python -m repro report --config {input.config:q} --runs {input.runs:q}"
        " --timing {input.timing:q} --tables-dir results/tables --figures-dir results/figures"
        " --provenance {input.provenance:q} --out {output:q} 2> {log:q}"
        " || (grep -m 1 '^error: ' {log:q} >&2 || tail -n 1 {log:q} >&2; exit 1)"
