#!/usr/bin/env bash
# The tests: set up, lint, unit and workflow tests, with the SLURM tests beside them on a real
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
# the SLURM tests (4, about 160 s) wait mostly on the scheduler's polling: they run in the
# background beside the suite, in a pytest session of their own (own temp folder, no
# cache), and print their output after the suite's
slurm_pid=""
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  slurm_dir=$(mktemp -d)
  python -m pytest -m slurm -p no:cacheprovider --basetemp "$slurm_dir/tmp" "$@" \
    >"$slurm_dir/log" 2>&1 &
  slurm_pid=$!
fi
status=0
# two workers, each taking whole test files (a file's module fixtures, such as the smoke
# study, run once): 526 s instead of 745 s on the 2-core build machine (BENCHMARKS.md)
python -m pytest -m "not slurm" -n "${TEST_WORKERS:-2}" --dist loadfile "$@" || status=$?

echo "== SLURM tests"
if [ -n "$slurm_pid" ]; then
  wait "$slurm_pid" || status=$?
  cat "$slurm_dir/log"
else
  echo "not run: the SLURM tests need root and apt-get to start a local SLURM (CI runs them)"
fi
exit "$status"
