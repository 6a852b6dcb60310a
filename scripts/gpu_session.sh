#!/usr/bin/env bash
# What a GPU machine (one command under a 10-minute limit) runs first, within 9.5 minutes: measure the layouts (a wide pack,
# K = 4 unless WIDE_KS names others; one process; several processes under MPS) and train
# the study's queue in priority order with the fastest, then pack everything into
# OUT_DIR/device-run.tar.gz (with OUT_DIR/device-run.log: two files).
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
# defaults from the first H200 session (BENCHMARKS.md): 90 s of measuring left no room
# to train after 57 s of data caching and the wide compile did not finish; now only the
# first run's data is cached before measuring, one wide pack (K = 4) is measured first;
# after the training, at most 45 s where the plan kept them back without losing a run:
# are two deterministic passes of a pack of 2 bitwise equal?
exec bash scripts/device_run.sh "$out" "${source_flag[@]}" --budget-s "${BUDGET_S:-560}" \
  --measure-s "${MEASURE_S:-100}" --calibration-steps "${STEPS:-60}" \
  --wide-ks ${WIDE_KS:-4} --wide-check "${WIDE_CHECK:-2}" "$@"
