#!/usr/bin/env bash
# What the next lent GPU runs first, within 9.5 minutes: measure the layouts (one process,
# wide packs K = 2, 4, 8, several processes under MPS) and train the study's queue in
# priority order with the fastest, then pack everything into OUT_DIR/device-run.tar.gz
# (with OUT_DIR/device-run.log: two files).
#   bash scripts/gpu_session.sh OUT_DIR [more device-run options, e.g. --commit SHA]
# The queue: resources/device/queue.json (ignored by git; carry it), written here first:
#   python -m repro queue --configfile config/why.yaml --recorded recorded/<label> \
#       --out resources/device/queue.json
# Without it, a stand-in: the paper grid (config/config.yaml), seeds 1 and 2, fp32.
# Back here: python -m repro record --tarball OUT/device-run.tar.gz --label <label> --add
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_session.sh OUT_DIR [device-run options]}
shift
queue=${QUEUE:-resources/device/queue.json}
if [[ -f $queue ]]; then
  source_flag=(--queue "$queue")
else
  echo "no $queue: training the stand-in queue (paper grid, seeds 1 and 2, fp32)"
  source_flag=(--standin-queue)
fi
exec bash scripts/device_run.sh "$out" "${source_flag[@]}" --budget-s "${BUDGET_S:-540}" \
  --measure-s "${MEASURE_S:-90}" --calibration-steps "${STEPS:-60}" "$@"
