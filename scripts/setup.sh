#!/usr/bin/env bash
# Set up everything the project needs, idempotently: system libraries for the PDF
# (Debian/Ubuntu, when run as root), a virtual environment in .venv with the pinned
# Python packages, and the project itself (editable). Source it or run it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for pkg in libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

# A full disk would otherwise stop pip halfway with "[Errno 28]" and a broken .venv.
# The pinned torch is a CUDA build: .venv ends at 6.0 GiB, and a fresh clone's whole
# test run peaked at 6.4 GiB of the disk (measured 2026-11-26), so ask for 7.
need_free() {
  local dir=$1 need_gib=$2 free_gib
  free_gib=$(df -Pk "$dir" | awk 'NR==2 {print int($4 / 1048576)}')
  if [ "$free_gib" -lt "$need_gib" ]; then
    echo "setup: only ${free_gib} GiB free on the disk of $dir; installing the pinned torch needs about ${need_gib} GiB: free some space (old clones, their .venv folders) or move the project, then run this again" >&2
    exit 1
  fi
}

PY=${PYTHON:-python3}
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  need_free . 7
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, alone: pip then takes the pinned wheels (on build machines, from disk)
  .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
  .venv/bin/python -m pip install -q -e ".[dev]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
