#!/usr/bin/env bash
# The main job: set up, then rebuild the whole study and its PDF (results/report.pdf).
# Extra arguments go to Snakemake, e.g.  bash scripts/run.sh --configfile config/smoke.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec snakemake --cores all "$@"
