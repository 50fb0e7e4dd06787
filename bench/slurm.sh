#!/usr/bin/env bash
# Sessions here or as Slurm jobs (SPEC §14): ITEMS (40) items dispatched at once (concurrency
# ITEMS), each agent a script that notes the moment it starts, works HOLD (10) seconds, commits
# and approves. Once with `sessions: local`, once with `sessions: slurm` on a one-node cluster
# whose node declares CPUs=8 (SLURM_PROBE_CPUS: 8 jobs at once, oversubscribing the 2 cores).
# Prints, for each: when the first agent and the 8th started, when all ITEMS had started (Slurm
# runs them in waves of 8), the runner's CPU while agents work (its own, with its watchers and
# what they run, over WINDOW (4) seconds from a second after every item was dispatched), and the
# whole run's time.
#
#   bench/slurm.sh [ITEMS] [HOLD]        e.g. bench/slurm.sh 8 2 (a quick run)
# Uses the cluster SLURM_CONF names, else starts one (scripts/slurm/up.sh, /var/tmp/amplify-slurm).
set -euo pipefail
ITEMS=${1:-40}
HOLD=${2:-10}
WINDOW=${WINDOW:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# boilerplate: the release binary, or BIN
if [ -n "${BIN:-}" ]; then :; else
    swift build -c release --package-path "$ROOT" >/dev/null
    BIN="$ROOT/.build/release/amplify-run"
fi
if [ -z "${SLURM_CONF:-}" ]; then
    PATH=/usr/sbin:/sbin:$PATH SLURM_PROBE_DIR=/var/tmp/amplify-slurm SLURM_PROBE_CPUS=8 SLURM_PROBE_KILLWAIT=5 "$ROOT/scripts/slurm/up.sh" >/dev/null
    export SLURM_CONF=/var/tmp/amplify-slurm/slurm.conf
fi
cpus=$(scontrol show node -o | grep -o 'CPUTot=[0-9]*' | head -n 1 | cut -d= -f2)
first=$(( cpus < ITEMS ? cpus : ITEMS ))

WORK=$(mktemp -d /var/tmp/amplify-bench-slurm-XXXXXX)
trap 'pkill -KILL -f "$WORK/" 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"
cp "$ROOT/Tests/AmplifyStagesTests/Fixtures/fake-bd" "$WORK/bin/bd"
cat > "$WORK/bin/agent" <<'SH'
#!/bin/sh
echo "$AMPLIFY_ITEM_ID $(date +%s.%N)" >> "$BENCH_STARTS"
sleep "$HOLD"
echo "$AMPLIFY_ITEM_ID" > "$AMPLIFY_ITEM_ID.txt" && git add "$AMPLIFY_ITEM_ID.txt" && git commit -qm "$AMPLIFY_ITEM_ID"
sed 's/"status": *"running"/"status": "approved"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"
SH
chmod +x "$WORK/bin/agent"
export PATH="$WORK/bin:/usr/bin:/bin" HOLD
export GIT_AUTHOR_NAME=B GIT_AUTHOR_EMAIL=b@localhost GIT_COMMITTER_NAME=B GIT_COMMITTER_EMAIL=b@localhost
tick=$(getconf CLK_TCK)

# CPU ticks (user + system, with reaped children) of the runner and of every watcher of this box.
ticks() {
    local t=0 p
    for p in "$1" $(pgrep -f "$WORK/$2/.amplify/slurm/watch.sh" || true); do
        [ -r "/proc/$p/stat" ] || continue
        t=$(( t + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0) ))
    done
    echo "$t"
}

run() {  # run MODE → "first nth all cpu% total"
    local mode=$1 repo="$WORK/$1"
    mkdir -p "$repo/.beads"
    for i in $(seq 1 "$ITEMS"); do
        echo "{\"id\":\"b-$i\",\"title\":\"Item b-$i\",\"description\":\"work\",\"status\":\"open\",\"priority\":1,\"issue_type\":\"task\",\"created_at\":\"2026-11-20T09:00:00Z\",\"dependencies\":[]}"
    done > "$repo/.beads/db.jsonl"
    cat > "$repo/wf.yaml" <<YAML
version: 1
settings: {base: main, poll: 1s, concurrency: $ITEMS, sessions: $mode}
stages:
  ready: {uses: query-ready, with: {source: bd}}
  dispatch:
    uses: dispatch
    for-each: \${{ stages.ready.outputs.items }}
    with: {agent: ["agent"], prompt: "Item \${{ item.id }}"}
  approved: {uses: wait-approved, timeout: 30m, with: {resume: ["true"]}}
  merge: {uses: merge}
  close: {uses: close}
  cleanup: {uses: cleanup, if: "\${{ always() }}"}
YAML
    (cd "$repo" && git init -q -b main && git add wf.yaml && git commit -qm init && printf '/.beads/\n' >> .git/info/exclude)
    export BD_DB="$repo/.beads/db.jsonl" BENCH_STARTS="$WORK/$mode.starts"
    : > "$BENCH_STARTS"
    local t0 pid c0 c1 cpu="n/a"
    t0=$(date +%s.%N)
    (cd "$repo" && exec "$BIN" wf.yaml > "$WORK/$mode.log" 2>&1) &
    pid=$!
    alive() { kill -0 "$pid" 2>/dev/null || { echo "slurm.sh: the $mode run ended early:" >&2; tail -n 20 "$WORK/$mode.log" >&2; exit 1; }; }
    # While they work: every item dispatched (its agent running, or its job submitted), a second
    # on, for WINDOW seconds; "n/a" when the run ended within it (a short HOLD).
    while [ "$(ls "$repo"/.amplify/sessions/*/output.log 2>/dev/null | wc -l)" -lt "$ITEMS" ]; do alive; sleep 0.05; done
    sleep 1
    c0=$(ticks "$pid" "$mode"); sleep "$WINDOW"; c1=$(ticks "$pid" "$mode")
    if kill -0 "$pid" 2>/dev/null; then cpu=$(awk -v a="$c0" -v b="$c1" -v w="$WINDOW" -v t="$tick" 'BEGIN { printf "%.1f", (b - a) / t / w * 100 }'); fi
    wait "$pid" || { echo "slurm.sh: the $mode run failed:" >&2; tail -n 20 "$WORK/$mode.log" >&2; exit 1; }
    local end; end=$(date +%s.%N)
    # When the first, the `first`-th and the last agent started, from the moments they wrote.
    local firstStart nth all
    firstStart=$(sort -k2 -n "$BENCH_STARTS" | head -n 1 | awk '{print $2}')
    nth=$(sort -k2 -n "$BENCH_STARTS" | sed -n "${first}p" | awk '{print $2}')
    all=$(sort -k2 -n "$BENCH_STARTS" | tail -n 1 | awk '{print $2}')
    [ "$(cd "$repo" && git log main --format=%B | grep -c '^Amplify-Item: b-')" -eq "$ITEMS" ] || { echo "slurm.sh: not every $mode item landed" >&2; exit 1; }
    awk -v t0="$t0" -v f="$firstStart" -v n="$nth" -v a="$all" -v e="$end" -v c="$cpu" 'BEGIN { printf "%.2f %.2f %.2f %s %.1f\n", f - t0, n - t0, a - t0, c, e - t0 }'
}

echo "slurm.sh: $ITEMS items, agents working ${HOLD}s each; the node has CPUs=$cpus; $(sbatch --version)"
printf '%-8s %12s %12s %12s %22s %10s\n' sessions "first agent" "${first}th agent" "all $ITEMS" "runner CPU (working)" "whole run"
for mode in local slurm; do
    line=$(run "$mode")
    read -r f n a c e <<< "$line"
    printf '%-8s %11ss %11ss %11ss %22s %9ss\n' "$mode" "$f" "$n" "$a" "$([ "$c" = n/a ] && echo n/a || echo "$c%")" "$e"
done
