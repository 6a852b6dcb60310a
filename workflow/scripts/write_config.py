# The resolved config as results/config.json. A script, not a shell command (the whole
# config as one argument can pass the system's limit on argument length) and not a
# `run:` block (Snakemake runs those in a second Snakemake process, which parses the
# workflow again). Snakemake hands the validated config in `snakemake.params`.
from repro.plan.config import write_resolved

write_resolved(snakemake.params.cfg, snakemake.output[0])  # noqa: F821 - set by Snakemake
