# Rebuild the seed study: data -> training grid -> timing -> tables, figures -> PDF report.
#   snakemake --cores all                                  (the paper's setup)
#   snakemake --cores all --configfile config/smoke.yaml   (a few hundred images, minutes)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


# recorded runs are copied instead of trained (config key recorded)
if RECORDED:

    include: "workflow/rules/recorded.smk"

else:

    include: "workflow/rules/train.smk"
    include: "workflow/rules/packs.smk"


include: "workflow/rules/report.smk"


localrules:
    all,
    write_config,
    tables,
    figures,
    provenance,
    report,


rule all:
    input:
        "results/report.pdf",
