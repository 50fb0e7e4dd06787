#!/usr/bin/env bash
# From ../shared/slurm/ (the one-node cluster every machine of ours can start), kept here so
# .ci/run and the tests can start it from a clean clone.
# Bring up a one-node Slurm 22.05 cluster (munged + slurmctld + slurmd) without systemd.
# Idempotent: starts only what is not running; exits 0 once the node is usable.
# Usage:  [SLURM_PROBE_DIR=/some/dir] up.sh      (default dir: the one holding this script)
# Then:   source "$BASE/env.sh"                  (exports SLURM_CONF) and use sbatch/squeue/...
# Stop:   down.sh   (WIPE=1 down.sh also deletes config/state/logs -> next up.sh is a cold start)
# Needs:  root; apt-get install --no-install-recommends slurmctld slurmd slurm-client munge
# Knobs (read only when slurm.conf is generated, i.e. first run / after WIPE=1 down.sh):
#   SLURM_PROBE_CTLD_PORT/SLURMD_PORT (6817/6818)  SLURM_PROBE_CPUS (nproc; more = oversubscribe)
#   SLURM_PROBE_MINJOBAGE (300)  SLURM_PROBE_KILLWAIT (30)  SLURM_PROBE_PROCTRACK (linuxproc|cgroup)
set -euo pipefail

BASE=${SLURM_PROBE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
CTLD_PORT=${SLURM_PROBE_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_PROBE_SLURMD_PORT:-6818}
TIMEOUT=${SLURM_PROBE_TIMEOUT:-30}
NODE=$(hostname -s)
CPUS=${SLURM_PROBE_CPUS:-$(nproc)}
MEM_MB=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 512 ))
PROCTRACK=${SLURM_PROBE_PROCTRACK:-linuxproc}

RUN=$BASE/run LOG=$BASE/log
mkdir -p "$RUN" "$LOG" "$BASE/state" "$BASE/spool" "$BASE/munge"
chmod 700 "$BASE/munge"; chmod 755 "$RUN"
export SLURM_CONF=$BASE/slurm.conf

# pid file -> live, non-zombie process with the expected name. Zombies matter: where PID 1 does
# not reap orphans promptly (as on these machines), a killed daemon lingers as <defunct>.
alive() {  # alive PIDFILE NAME
  local pid st
  [[ -s $1 ]] || return 1
  pid=$(cat "$1" 2>/dev/null); [[ -n $pid ]] || return 1
  st=$(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
  [[ $st != Z* && $st == *"$2"* ]]
}

# ---------- config (generated only if absent, so a running cluster is not disturbed) ----------
if [[ ! -f $SLURM_CONF ]]; then
cat > "$SLURM_CONF" <<EOF
ClusterName=probe
SlurmctldHost=${NODE}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${RUN}/munge.socket
StateSaveLocation=${BASE}/state
SlurmdSpoolDir=${BASE}/spool
SlurmctldPidFile=${RUN}/slurmctld.pid
SlurmdPidFile=${RUN}/slurmd.pid
SlurmctldLogFile=${LOG}/slurmctld.log
SlurmdLogFile=${LOG}/slurmd.log
ProctrackType=proctrack/${PROCTRACK}
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG}/jobcomp.txt
SchedulerType=sched/backfill
# default batch_sched_delay=3 delays batch job starts by up to 3 s; with 0 they start on the ~1 s tick
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
MinJobAge=${SLURM_PROBE_MINJOBAGE:-300}
KillWait=${SLURM_PROBE_KILLWAIT:-30}
# lets CPUs= exceed the real core count (more concurrent 1-CPU jobs) without the node being drained
SlurmdParameters=config_overrides
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ $PROCTRACK == cgroup ]]; then   # needs a writable cgroup v1 freezer (or v2) hierarchy
    printf 'CgroupPlugin=autodetect\nCgroupAutomount=yes\nConstrainCores=no\nConstrainRAMSpace=no\n' \
      > "$BASE/cgroup.conf"
  fi
fi
echo "export SLURM_CONF=$SLURM_CONF" > "$BASE/env.sh"

# ---------- munge (own key and socket under $BASE; /etc/munge is not used) ----------
if ! alive "$RUN/munged.pid" munged; then
  [[ -s $BASE/munge/munge.key ]] || mungekey -c -b 1024 -k "$BASE/munge/munge.key"
  chmod 600 "$BASE/munge/munge.key"
  rm -f "$RUN/munge.socket" "$RUN/munge.socket.lock"
  munged --force -S "$RUN/munge.socket" --key-file="$BASE/munge/munge.key" \
         --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
         --seed-file="$BASE/munge/munged.seed"      # daemonizes, writes its own pid file
  for _ in $(seq 50); do [[ -S $RUN/munge.socket ]] && break; sleep 0.1; done
fi

# ---------- slurmctld (recovers saved jobs from $BASE/state: no -c/-i) ----------
if ! alive "$RUN/slurmctld.pid" slurmctld; then
  setsid slurmctld -D >>"$LOG/slurmctld.stderr" 2>&1 </dev/null &
  echo $! > "$RUN/slurmctld.pid"
fi
for i in $(seq $((TIMEOUT*10))); do
  scontrol ping 2>/dev/null | grep -q 'is UP' && break
  (( i == TIMEOUT*10 )) && { echo "slurmctld did not come up; see $LOG/slurmctld.log" >&2; exit 1; }
  sleep 0.1
done

# ---------- slurmd ----------
if ! alive "$RUN/slurmd.pid" slurmd; then
  setsid slurmd -D -N "$NODE" >>"$LOG/slurmd.stderr" 2>&1 </dev/null &
  echo $! > "$RUN/slurmd.pid"
fi

# ---------- wait for the node ----------
# Ready = local slurmd answers AND the controller sees the node IDLE/MIXED/ALLOCATED without a
# NOT_RESPONDING/DOWN/DRAIN flag (sinfo's "idle*" = not responding, so parse scontrol instead).
for i in $(seq $((TIMEOUT*10))); do
  st=$(scontrol show node "$NODE" -o 2>/dev/null | grep -o 'State=[^ ]*' | cut -d= -f2 || true)
  if [[ $st =~ ^(IDLE|MIXED|ALLOCATED)(\+COMPLETING)?$ ]] && scontrol show slurmd >/dev/null 2>&1; then
    echo "slurm up: node $NODE $st (SLURM_CONF=$SLURM_CONF)"; exit 0
  fi
  # ReturnToService=2 clears DOWN when slurmd registers; a DRAIN left by an earlier run needs resume
  if (( i == 20 )) && [[ $st == *DRAIN* ]]; then scontrol update nodename="$NODE" state=resume 2>/dev/null || true; fi
  sleep 0.1
done
echo "node $NODE not usable (state: ${st:-?}); see $LOG/" >&2
exit 1
