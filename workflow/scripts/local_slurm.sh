#!/usr/bin/env bash
# A single-node SLURM on this machine, to run the workflow's SLURM profile for real (a test bed, not a cluster).
#
#   workflow/scripts/local_slurm.sh start    install Debian's slurm-wlm and munge if missing (apt-get, as root),
#                                            start munged, slurmctld and slurmd, wait until the node is idle
#   workflow/scripts/local_slurm.sh stop     stop the daemons this script started (by the process ids it recorded)
#   workflow/scripts/local_slurm.sh status   sinfo of the node
#
# Everything SLURM writes (spool, state, logs, pid files) lives in $LOCAL_SLURM_DIR (default /tmp/rsscale-slurm).
# The configuration goes to /etc/slurm/slurm.conf, where the clients and the job steps (srun inside a job) look for
# it; a slurm.conf there that this script did not write is left alone and `start` fails. munge uses its system key (/etc/munge/munge.key, created when missing) and is
# left alone when it already runs. The node gets this machine's CPUs and most of its memory, in one partition
# `cpu`, without GPUs (gres is not configured). Exit status: 0 when the node is up (start) or stopped (stop).
set -euo pipefail

DIR=${LOCAL_SLURM_DIR:-/tmp/rsscale-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by rsscale's workflow/scripts/local_slurm.sh"
STARTED=$DIR/started   # one line per daemon this script started: name pid

say() { echo "local_slurm: $*" >&2; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || { say "slurm-wlm and munge are missing and installing them needs root"; return 1; }
    command -v apt-get >/dev/null || { say "slurm-wlm and munge are missing and there is no apt-get"; return 1; }
    say "installing slurm-wlm and munge (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >"$DIR/apt.log" 2>&1 \
        || { apt-get update >>"$DIR/apt.log" 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge \
                >>"$DIR/apt.log" 2>&1; } \
        || { say "apt-get failed: see $DIR/apt.log"; return 1; }
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged is running already (ours from an earlier start, or the system's)
    fi
    install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 755 /run/munge  # clients reach the socket through it
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    runuser -u munge -- munged
    for _ in $(seq 50); do
        if [ -s /run/munge/munged.pid ] && munge -n | unmunge >/dev/null 2>&1; then
            echo "munged $(cat /run/munge/munged.pid)" >>"$STARTED"
            return 0
        fi
        sleep 0.1
    done
    say "munged did not come up"
    return 1
}

write_conf() {
    local cpus memory
    cpus=$(nproc)
    memory=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)  # MB, leaving a fifth for the rest
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$(dirname "$CONF")"
    if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
        say "$CONF exists and is not this script's: refusing to replace a real SLURM configuration"
        return 1
    fi
    cat >"$CONF" <<EOF
$MARK
ClusterName=rsscale-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost NodeHostname=$(hostname) CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    mkdir -p "$DIR"
    if [ -s "$STARTED" ] && sinfo -h >/dev/null 2>&1; then
        say "already running (stop it first to restart)"
        return 0
    fi
    install_packages
    : >"$STARTED"
    start_munge
    write_conf
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for daemon in slurmctld slurmd; do
        for _ in $(seq 50); do [ -s "$DIR/$daemon.pid" ] && break; sleep 0.1; done
        [ -s "$DIR/$daemon.pid" ] || { say "$daemon did not start: see $DIR/log/$daemon.log"; stop; return 1; }
        echo "$daemon $(cat "$DIR/$daemon.pid")" >>"$STARTED"
    done
    for _ in $(seq 60); do
        if [ "$(sinfo -h -o %t 2>/dev/null)" = idle ]; then
            say "node up: $(sinfo -h -o '%P %D %c CPUs %m MB %t')"
            return 0
        fi
        sleep 0.5
    done
    say "the node did not become idle: see $DIR/log"
    stop
    return 1
}

stop() {
    [ -s "$STARTED" ] || { say "nothing started here"; return 0; }
    # newest first: slurmd, slurmctld, then munged (when this script started it)
    tac "$STARTED" | while read -r name pid; do
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            say "stopped $name ($pid)"
        fi
    done
    : >"$STARTED"
    if [ -e "$CONF" ] && grep -qxF "$MARK" "$CONF"; then rm -f "$CONF"; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
