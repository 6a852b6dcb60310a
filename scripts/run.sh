#!/usr/bin/env bash
# The main job: set up, then rebuild the whole study and its PDF (results/report.pdf).
# Extra arguments go to Snakemake, e.g.  bash scripts/run.sh --configfile config/smoke.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# a lock left by a killed Snakemake stops every run: say so in one line, with the fix
python -m repro.plan.snakemake_lock
exec snakemake --cores all "$@"
