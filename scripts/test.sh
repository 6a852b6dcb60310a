#!/usr/bin/env bash
# The tests: set up, lint, unit and workflow tests, then the SLURM tests on a real
# single-node SLURM (needs root and Debian packages; CI has both).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

echo "== lint"
ruff check src tests benchmarks
ruff format --check src tests benchmarks
snakefmt --check Snakefile workflow/rules
snakemake --lint --configfile config/smoke.yaml

echo "== tests"
# two workers, each taking whole test files (a file's module fixtures, such as the smoke
# study, run once): 526 s instead of 745 s on the 2-core build machine (BENCHMARKS.md)
python -m pytest -m "not slurm" -n "${TEST_WORKERS:-2}" --dist loadfile "$@"

echo "== SLURM tests"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  python -m pytest -m slurm "$@"
else
  echo "not run: the SLURM tests need root and apt-get to start a local SLURM (CI runs them)"
fi
