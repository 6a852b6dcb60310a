#!/usr/bin/env bash
# The prepared GPU check, for a session that is lent a GPU (one run, ~10 minutes):
#   bash benchmarks/gpu_check.sh [ARCHIVE]
# 1. cuda deterministic mode: two 2-epoch runs give identical CSVs;
# 2. kill and resume on cuda completes and matches the run length;
# 3. throughput on full data: project loop vs the seed-style reference, and compiled.
# Record its output in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${1:-../shared/data/cifar10-jpeg.tar.gz}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
bash scripts/setup.sh
. .venv/bin/activate
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -m repro prepare --archive "$ARCHIVE" --out "$OUT/full.npz"
python -m repro prepare --archive "$ARCHIVE" --train-per-class 200 --test-per-class 50 \
  --out "$OUT/small.npz"

echo "== 1. deterministic cuda runs"
for r in a b; do
  python -m repro train --device cuda --cuda-deterministic --epochs 2 --cache "$OUT/small.npz" \
    --out "$OUT/det-$r" 2> "$OUT/det-$r.log"
done
cmp "$OUT/det-a/epochs.csv" "$OUT/det-b/epochs.csv" && cmp "$OUT/det-a/steps.csv" "$OUT/det-b/steps.csv" \
  && echo "deterministic: identical CSVs"

echo "== 2. kill and resume on cuda"
python -m repro train --device cuda --epochs 3 --cache "$OUT/small.npz" --out "$OUT/res" \
  --checkpoint "$OUT/res.ckpt" 2> "$OUT/res.log" &
pid=$!
while [ ! -f "$OUT/res.ckpt" ]; do sleep 0.2; done
kill -TERM $pid; wait $pid || echo "stopped with status $?"
python -m repro train --device cuda --epochs 3 --cache "$OUT/small.npz" --out "$OUT/res" \
  --checkpoint "$OUT/res.ckpt" 2>> "$OUT/res.log"
grep -c "^3," "$OUT/res/epochs.csv" >/dev/null && grep "resumed" "$OUT/res.log"

echo "== 3. throughput, full data"
python benchmarks/train_throughput.py --device cuda --cache "$OUT/full.npz" --steps 300 --warmup 30
python benchmarks/train_throughput.py --device cuda --cache "$OUT/full.npz" --steps 300 --warmup 30 \
  --compile --skip-reference
python -m repro timing --device cuda --epochs 3 --cache "$OUT/full.npz" --out "$OUT/timing.json" \
  2> "$OUT/timing.log" && cat "$OUT/timing.json"
