#!/usr/bin/env bash
# The paper's grid on a GPU machine reached by copying files, in one command
# (src/repro/engine/device_run.py says how):
#   bash scripts/device_run.sh OUT_DIR --commit SHA [python -m repro device-run options]
# It runs under the machine's own python3 (or $PYTHON) and needs only torch, torchvision,
# numpy, pillow and pyyaml: no set-up, no network. The data archive must be at
# resources/device/cifar10-jpeg.tar.gz (ignored by git: copy it there with the checkout).
# OUT_DIR receives device-run.tar.gz, the fp16 weights and this command's log. Then, here:
#   python -m repro record --tarball .../device-run.tar.gz --label <gpu>-<date> --commit SHA
# To finish runs an earlier recording left undone, with its settings and no calibration:
#   bash scripts/device_run.sh OUT_DIR --commit SHA --plan graphs-bf16 --lrs 0.005 0.001
#   python -m repro record --tarball ... --label h100-2026-11-26 --add --commit SHA
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/device_run.sh OUT_DIR [options]}
shift
mkdir -p "$out"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
# the checkout that travels to a GPU machine may carry an older .git than the tree it
# holds (seen): the caller names the commit with --commit SHA, which wins over this one
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
work=$(mktemp -d "${TMPDIR:-/tmp}/device-run.XXXXXX")
"$PY" -m repro device-run --out "$out" --work "$work" --commit "$commit" "$@" 2>&1 |
  tee "$out/device-run.log"
