#!/usr/bin/env bash
# From ../shared/slurm/ (the one-node cluster every machine of ours can start), kept here so
# .ci/run and the tests can start it from a clean clone.
# Stop only the daemons started by up.sh, via their pid files (slurmd, slurmctld, munged).
# Jobs still running are cancelled first so their processes do not outlive the cluster.
# WIPE=1 also deletes state/spool/config/logs (next up.sh is a cold start).
set -uo pipefail
BASE=${SLURM_PROBE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
RUN=$BASE/run
export SLURM_CONF=$BASE/slurm.conf

alive() {  # alive PIDFILE NAME -- live, non-zombie process with the expected name
  local pid st
  [[ -s $1 ]] || return 1
  pid=$(cat "$1" 2>/dev/null); [[ -n $pid ]] || return 1
  st=$(ps -o stat=,comm= -p "$pid" 2>/dev/null) || return 1
  [[ $st != Z* && $st == *"$2"* ]]
}

if alive "$RUN/slurmctld.pid" slurmctld; then
  scancel --full --signal=KILL --state=RUNNING 2>/dev/null
  scancel 2>/dev/null   # pending ones (as root: all users' jobs)
  for _ in $(seq 50); do [[ -z $(squeue -h -t R,CG 2>/dev/null) ]] && break; sleep 0.1; done
fi

for d in slurmd slurmctld munged; do
  f=$RUN/$d.pid
  if alive "$f" "$d"; then
    pid=$(cat "$f"); kill -TERM "$pid"
    gone() { ! st=$(ps -o stat=,comm= -p "$pid" 2>/dev/null) || [[ $st == Z* || $st != *"$d"* ]]; }
    for _ in $(seq 100); do gone && break; sleep 0.1; done
    gone || kill -KILL "$pid"
  fi
  rm -f "$f"
done
rm -f "$RUN/munge.socket" "$RUN/munge.socket.lock"

if [[ ${WIPE:-0} == 1 ]]; then
  rm -rf "$BASE/state" "$BASE/spool" "$BASE/run" "$BASE/log" "$BASE/munge" "$BASE/slurm.conf" "$BASE/cgroup.conf" "$BASE/env.sh"
fi
echo "slurm down"
