#!/usr/bin/env bash
# Install a single-node SLURM (22.05 on Debian 12) plus MariaDB for accounting.
# Idempotent: does nothing when every package is already installed.
# Needs root (CI runs as root). Daemons are NOT started here: see slurm_up.sh.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "slurm packages already installed"
    exit 0
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
