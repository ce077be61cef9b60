#!/usr/bin/env bash
# A single-node Slurm (Debian's slurm-wlm and munge) for the tests and CI: installs it when missing, writes a
# munge key and a slurm.conf for this host, starts the daemons directly (containers have no systemd) and waits
# until the node is idle. Idempotent: re-running with the daemons up only checks that the node is idle.
# Needs root.
set -euo pipefail
start=$(date +%s)

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
memory_mb=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
conf=/etc/slurm/slurm.conf

mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge /etc/slurm \
  /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key

wanted=$(cat <<EOF
# single-node Slurm written by hybtui's scripts/slurm.sh
ClusterName=hybtui
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
)
changed=0
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
  printf '%s\n' "$wanted" >"$conf"
  changed=1
fi

if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi
if [ "$changed" = 1 ]; then
  # a changed configuration needs the daemons restarted, not just reconfigured (the node's shape may differ)
  for daemon in slurmd slurmctld; do
    if [ -f "/run/$daemon.pid" ] && kill -0 "$(cat "/run/$daemon.pid")" 2>/dev/null; then
      kill "$(cat "/run/$daemon.pid")"
      while kill -0 "$(cat "/run/$daemon.pid")" 2>/dev/null; do sleep 0.2; done
    fi
  done
fi
if ! { [ -f /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; }; then
  /usr/sbin/slurmctld
fi
if ! { [ -f /run/slurmd.pid ] && kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null; }; then
  /usr/sbin/slurmd
fi

for _ in $(seq 120); do
  state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null || true)
  case "$state" in
    idle | mixed | allocated) break ;;
    down* | drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
case "$state" in
  idle | mixed | allocated) echo "slurm: node $host $state after $(($(date +%s) - start)) s" ;;
  *)
    echo "slurm: node $host is '${state:-unknown}' after $(($(date +%s) - start)) s" >&2
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
    ;;
esac
