#!/usr/bin/env bash
# Bring up a real single-node SLURM on this machine (Debian 12, root, no systemd).
#
#   tests/slurm/slurm_up.sh [--accounting | --no-accounting]
#
# --accounting (default): munged, MariaDB, slurmdbd, slurmctld, slurmd.
#                         sacct works; an account "repro" is created for root.
# --no-accounting:        munged, slurmctld, slurmd only
#                         (AccountingStorageType=accounting_storage/none).
#
# Idempotent: if the daemons it started earlier are still alive and were
# started in the same mode, it does nothing. Otherwise it stops them
# (slurm_down.sh) and starts from a fresh state directory.
#
# Every daemon runs in the foreground of a background job and its pid is written
# to $SLURM_TEST_STATE/pids/<name>.pid; slurm_down.sh stops exactly those pids.
#
# Environment:
#   SLURM_TEST_STATE    state/log directory (default /tmp/repro-slurm)
#   SLURM_TEST_DB_PORT  TCP port for the private MariaDB (default 3307)
#   SLURM_TEST_ACCOUNT  account created in accounting mode (default repro)
# Writes /etc/slurm/slurm.conf (and slurmdbd.conf in accounting mode).
set -euo pipefail

mode=accounting
case "${1:-}" in
    ""|--accounting) mode=accounting ;;
    --no-accounting) mode=none ;;
    *) echo "usage: $0 [--accounting|--no-accounting]" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${SLURM_TEST_STATE:-/tmp/repro-slurm}"
db_port="${SLURM_TEST_DB_PORT:-3307}"
account="${SLURM_TEST_ACCOUNT:-repro}"
cluster=repro
pids="$state/pids"
t0=$(date +%s.%N)

log() { echo "[slurm_up] $*"; }
die() { echo "[slurm_up] ERROR: $*" >&2; exit 1; }

alive() {  # alive NAME -> pid file exists and the process runs (zombies count as dead)
    local f="$pids/$1.pid" pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

wait_for() {  # wait_for NAME SECONDS CMD... : poll CMD until it succeeds
    local name=$1 limit=$2; shift 2
    local i
    for ((i = 0; i < limit * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        alive "$name" || die "$name exited during start-up (see $state/$name.*)"
        sleep 0.1
    done
    die "timed out after ${limit}s waiting for $name (logs in $state)"
}

start() {  # start NAME CMD... : run CMD in the background, record its pid
    local name=$1; shift
    "$@" </dev/null >"$state/$name.out" 2>&1 &
    echo $! >"$pids/$name.pid"
    log "started $name (pid $!)"
}

# ---------------------------------------------------------------- idempotency
if [ -f "$state/mode" ] && [ "$(cat "$state/mode")" = "$mode" ]; then
    needed=(munged slurmctld slurmd)
    [ "$mode" = accounting ] && needed+=(mariadb slurmdbd)
    all_up=1
    for d in "${needed[@]}"; do alive "$d" || all_up=0; done
    if [ "$all_up" = 1 ] && scontrol ping 2>/dev/null | grep -q UP; then
        log "already up (mode $mode, state $state)"
        exit 0
    fi
fi
# anything half-started or in the other mode goes first
bash "$here/slurm_down.sh" >/dev/null 2>&1 || true

for tool in slurmctld slurmd munged sbatch; do
    command -v "$tool" >/dev/null || die "$tool not found: run tests/slurm/install.sh"
done

rm -rf "$state"
mkdir -p "$pids" "$state/ctld" "$state/spool"
chmod 755 "$state"
echo "$mode" >"$state/mode"

# ---------------------------------------------------------------- host name
host="$(hostname -s)"
if ! getent hosts "$host" >/dev/null; then
    log "adding $host to /etc/hosts"
    echo "127.0.1.1 $host" >>/etc/hosts
fi

# ---------------------------------------------------------------- munge
# /run/munge does not exist without systemd; munged must run as user munge.
install -d -o munge -g munge -m 0755 /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if pgrep -x munged >/dev/null && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "a munged not started by this script is already running; using it"
else
    start munged setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --foreground --force
    wait_for munged 10 sh -c 'munge -n </dev/null | unmunge'
fi

# ---------------------------------------------------------------- slurm.conf
if [ "$mode" = accounting ]; then
    accounting_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
    accounting_lines="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# Node line as slurmd sees the hardware; RealMemory a little lower so that the
# node is not drained for having less memory than configured.
node_line="$(slurmd -C | head -n 1)"
real_mem="$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")"
node_mem=$((real_mem * 90 / 100))
node_line="$(sed "s/RealMemory=[0-9]*/RealMemory=$node_mem/" <<<"$node_line")"
node_name="$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")"

cat >/etc/slurm/slurm.conf <<EOF
# written by tests/slurm/slurm_up.sh (mode: $mode)
ClusterName=$cluster
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups and no mail on a test machine
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# keep finished jobs visible to squeue for 5 minutes: the executor only trusts
# squeue for status when MinJobAge >= 3 x its first status wait
MinJobAge=300
SchedulerParameters=batch_sched_delay=0
$accounting_lines
$node_line State=UNKNOWN
PartitionName=debug Nodes=$node_name Default=YES MaxTime=INFINITE State=UP
EOF

# ---------------------------------------------------------------- accounting
# (slurm.conf must exist before sacctmgr can talk to slurmdbd)
if [ "$mode" = accounting ]; then
    # A private MariaDB with its own data directory: every bring-up starts
    # from an empty accounting database, so job ids never collide with old runs.
    db="$state/mysql"
    mkdir -p "$db"
    chown mysql:mysql "$db"
    mariadb-install-db --no-defaults --user=mysql --datadir="$db" \
        --auth-root-authentication-method=socket --skip-test-db \
        >"$state/mariadb-install.out" 2>&1 || die "mariadb-install-db failed (see $state/mariadb-install.out)"
    start mariadb /usr/sbin/mariadbd --no-defaults --user=mysql \
        --datadir="$db" --socket="$db/mysql.sock" \
        --port="$db_port" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$db/mariadbd.pid" --log-error="$db/mariadb.err"
    wait_for mariadb 60 mariadb-admin --no-defaults -S "$db/mysql.sock" -u root ping
    mariadb --no-defaults -S "$db/mysql.sock" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-test';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-test';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

    cat >/etc/slurm/slurmdbd.conf <<EOF
# written by tests/slurm/slurm_up.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$state/slurmdbd.pid
LogFile=$state/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm-test
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
    start slurmdbd /usr/sbin/slurmdbd -D
    wait_for slurmdbd 30 sacctmgr -n show cluster
    sacctmgr -i add cluster "$cluster" >/dev/null || true
else
    rm -f /etc/slurm/slurmdbd.conf
fi

start slurmctld /usr/sbin/slurmctld -D -i
wait_for slurmctld 30 sh -c 'scontrol ping | grep -q UP'
start slurmd /usr/sbin/slurmd -D
wait_for slurmd 30 sh -c "sinfo -h -n '$node_name' -o %T | grep -qx idle"

if [ "$mode" = accounting ]; then
    sacctmgr -i add account "$account" Description=tests Organization=tests >/dev/null
    sacctmgr -i add user root Account="$account" >/dev/null
fi

t1=$(date +%s.%N)
log "SLURM up in mode $mode in $(awk "BEGIN{printf \"%.1f\", $t1-$t0}") s (node $node_name, RealMemory=$node_mem, state $state)"
