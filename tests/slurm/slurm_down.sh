#!/usr/bin/env bash
# Stop every daemon that slurm_up.sh started, by the pids it recorded.
#
#   tests/slurm/slurm_down.sh
#
# Jobs still queued or running are cancelled first (by job id). Daemons are
# stopped in reverse start order with SIGTERM, then SIGKILL after 10 s.
# Processes not started by slurm_up.sh are never touched. Safe to run twice.
set -uo pipefail

state="${SLURM_TEST_STATE:-/tmp/repro-slurm}"
pids="$state/pids"
log() { echo "[slurm_down] $*"; }

[ -d "$pids" ] || { log "nothing to stop ($pids missing)"; exit 0; }

running() {  # running PID -> process exists and is not a zombie awaiting reaping
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$st" != Z ]
}
alive() { [ -s "$pids/$1.pid" ] && running "$(cat "$pids/$1.pid")"; }

# cancel leftover jobs while slurmctld still answers
if alive slurmctld; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        log "cancelling jobs: $(echo $jobs)"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs || true
        sleep 1
    fi
fi

for name in slurmd slurmctld slurmdbd mariadb munged; do
    f="$pids/$name.pid"
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$f"
done
exit 0
