#!/usr/bin/env bash
# Before using the GPU machine: its scripts (device_run.sh, gpu_session.sh) run here on
# the CPU under the GPU machine's own package versions. The suite proves them in a bare
# Python with this project's torch (2.14.1); the GPU machine's python3 is 3.12.3 with
# torch 2.11.0+cu130, torchvision 0.26.0 and numpy 2.5.2 (as listed for it, read 2026-11;
# both GPU machines used so far reported torch 2.11.0+cu130, BENCHMARKS.md), so a call that
# 2.11 lacks would otherwise first fail on the GPU, costing its time-limited minutes. (Here under
# this machine's python3, 3.11 on build machines.)
#   bash scripts/device_torch_check.sh    # first time: about 3 GiB download; tests ~3 min
# Needs the project's .venv (scripts/setup.sh) for pytest; the device's versions live in
# .venv-device (ignored by git), which holds only what the GPU scripts may import.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
venv=${DEVICE_VENV:-.venv-device}
# numpy 2.5 needs Python 3.12, which build machines lack (3.11): the newest numpy there
versions=(torch==2.11.0 torchvision==0.26.0 numpy pillow pyyaml)
stamp=$venv/.installed-$(printf '%s\n' "${versions[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  need_free . 6  # from setup.sh: torch 2.11's CUDA build with its libraries is 4.7 GiB
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q "${versions[@]}"
  touch "$stamp"
fi
"$venv/bin/python" -c 'import torch, torchvision, numpy; print("device versions here: torch", torch.__version__, "torchvision", torchvision.__version__, "numpy", numpy.__version__)'
REPRO_DEVICE_PYTHON="$PWD/$venv/bin/python" .venv/bin/python -m pytest -q -p no:xdist \
  -m device_script tests/engine/test_device_run.py
