#!/usr/bin/env bash
# A one-node Slurm on this machine, for trying a cluster sweep before submitting it and for the
# tests marked `cluster` (tests/test_cluster.py; CI runs this script before them):
#
#   sudo scripts/slurm_local.sh          # install, configure and start; prints what it did
#   sudo scripts/slurm_local.sh --stop   # stop the daemons it started (packages stay)
#
# Debian/Ubuntu packages: slurm-wlm (slurmctld, slurmd, the client commands), munge
# (authentication), slurmdbd and mariadb-server (job accounting: `sacct`, which submitit reads
# the state of every job from; without it each poll warns "Bypassing sacct error" and a job that
# dies without a result, e.g. at its time limit, is never seen to end). One partition, `cpu`,
# holds every core and RealMemory of this machine; cores and memory are consumable, as on a
# cluster, so `hydra.launcher.cpus_per_task` and `mem_gb` decide how many runs fit at once.
#
# Idempotent: installs only missing packages, rewrites a config file only when its content
# changes (and restarts the daemons then), starts only daemons that are not running. It refuses
# to overwrite a slurm.conf or slurmdbd.conf it did not write. Runs as root; no systemd needed
# (daemons are started directly). Logs: /var/log/slurm/. Exit 0 once a test job has run and
# sacct reports it COMPLETED; otherwise one line on stderr saying which step failed.
set -euo pipefail

PARTITION=cpu
CLUSTER=riskq-local
MARK="# written by riskq scripts/slurm_local.sh"
ETC=/etc/slurm
RUN=/run/slurm
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
START=$SECONDS

fail() { echo "slurm_local.sh: error: $*" >&2; exit 1; }
note() { echo "slurm_local.sh: $*"; }

# Wait up to $1 seconds for the command that follows to succeed.
wait_for() {
    local limit=$1
    shift
    for _ in $(seq "$limit"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_daemon() {  # pid file
    local pid
    if running "$1"; then
        pid=$(cat "$1")
        kill "$pid"
        wait_for 30 bash -c "! kill -0 $pid" || fail "$(basename "$1" .pid) did not stop"
    fi
    rm -f "$1"
}

stop_all() {
    for daemon in slurmd slurmctld slurmdbd; do stop_daemon "$RUN/$daemon.pid"; done
}

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || fail "needs apt-get (Debian/Ubuntu) to install ${missing[*]}"
    note "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/slurm_local.apt.log 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >/tmp/slurm_local.apt.log 2>&1; } \
        || fail "apt-get install ${missing[*]} failed (log: /tmp/slurm_local.apt.log)"
}

start_munge() {
    [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        install -d -o munge -g munge -m 0755 /run/munge
        runuser -u munge -- /usr/sbin/munged
        wait_for 10 bash -c "munge -n | unmunge" || fail "munged does not answer (see syslog)"
    fi
}

start_mariadb() {
    if ! mysqladmin ping >/dev/null 2>&1; then
        install -d -o mysql -g mysql /run/mysqld
        (mysqld_safe --skip-syslog >/dev/null 2>&1 &)
        wait_for 60 mysqladmin ping || fail "MariaDB did not start (log: /var/lib/mysql/*.err)"
    fi
    # slurmdbd connects as the system user slurm through the socket: no password anywhere
    mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" \
        || fail "could not create the accounting database in MariaDB"
}

# Write $2 to file $1 (owner $3, mode $4); return 0 when it changed. A file without MARK
# belongs to someone else and is never overwritten.
write_config() {
    local path=$1 content=$2
    if [[ -f $path ]] && ! grep -qF "$MARK" "$path"; then
        fail "$path exists and was not written by this script; move it away to use a local Slurm"
    fi
    if [[ -f $path ]] && [[ "$(cat "$path")" == "$content" ]]; then
        return 1
    fi
    printf '%s\n' "$content" >"$path"
    chown "$3" "$path" && chmod "$4" "$path"
    return 0
}

configure() {  # returns 0 when a config file changed
    local node cores memory changed=1
    node=$(hostname -s)
    # CPUs, sockets, cores and memory as slurmd detects them (NodeName=... CPUs=2 ... RealMemory=)
    cores=$(slurmd -C | head -1 | cut -d' ' -f2-)
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$cores")
    install -d -o slurm -g slurm "$RUN" /var/log/slurm /var/lib/slurm/slurmctld \
        /var/lib/slurm/slurmd
    write_config "$ETC/slurm.conf" "$MARK
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups needed: processes are tracked through /proc, tasks are not bound to cores
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# job states for sacct (submitit's polling) come from slurmdbd
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# a job's processes get SIGTERM at its end, then SIGKILL after KillWait seconds
KillWait=30
NodeName=$node NodeAddr=127.0.0.1 $cores State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=$((memory / 4))" \
        root:root 644 && changed=0
    write_config "$ETC/slurmdbd.conf" "$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
PidFile=$RUN/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log" slurm:slurm 600 && changed=0
    return $changed
}

start_slurm() {
    running "$RUN/slurmdbd.pid" || slurmdbd
    wait_for 60 sacctmgr -n list cluster || fail "slurmdbd does not answer (/var/log/slurm/slurmdbd.log)"
    if [[ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    running "$RUN/slurmctld.pid" || slurmctld
    wait_for 60 scontrol ping || fail "slurmctld does not answer (/var/log/slurm/slurmctld.log)"
    running "$RUN/slurmd.pid" || slurmd
    local node
    node=$(hostname -s)
    if ! wait_for 60 bash -c "sinfo -h -n $node -o %T | grep -Eq '^(idle|mixed|allocated)'"; then
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
        wait_for 30 bash -c "sinfo -h -n $node -o %T | grep -Eq '^(idle|mixed|allocated)'" \
            || fail "node $node is $(sinfo -h -n "$node" -o %T) (/var/log/slurm/slurmd.log)"
    fi
}

check_job() {
    local job state
    job=$(sbatch --parsable -p "$PARTITION" -t 1 --mem=100M -o /dev/null --wrap true) \
        || fail "sbatch of a test job failed"
    for _ in $(seq 60); do
        state=$(sacct -n -X -P -j "$job" -o State 2>/dev/null | head -1)
        [[ $state == COMPLETED ]] && return 0
        [[ $state =~ ^(FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) ]] \
            && fail "test job $job ended $state"
        sleep 1
    done
    fail "test job $job not COMPLETED in sacct after 60 s (state: ${state:-none})"
}

[[ $(id -u) -eq 0 ]] || fail "must run as root (it installs packages and starts daemons)"
if [[ ${1:-} == --stop ]]; then
    stop_all
    note "stopped slurmd, slurmctld and slurmdbd"
    exit 0
fi
[[ $# -eq 0 ]] || fail "unknown argument '$1'; valid: --stop, or none"

install_packages
start_munge
start_mariadb
if configure; then
    stop_all  # a changed configuration needs fresh daemons
fi
start_slurm
check_job
note "one-node Slurm ready in $((SECONDS - START)) s: partition $PARTITION on $(hostname -s)" \
    "($(sinfo -h -p "$PARTITION" -o '%c CPUs, %m MB')), accounting through slurmdbd"
