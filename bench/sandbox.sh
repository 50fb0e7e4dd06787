#!/usr/bin/env bash
# What `sandbox: bwrap` costs a dispatch (SPEC §12): ITEMS (16) items dispatched at once on a
# repository of FILES (2000) files, each agent a script that notes the moment it runs and
# approves. Without the sandbox, each item gets a worktree; with it, a repository of its own
# (`git clone --shared`) and bubblewrap around the agent. For each, in the same sitting, ROUNDS
# (3) times alternately, prints the median time of the dispatch stage (claim, checkout, session,
# start), and when the agents run, inside their walls, counted from the first dispatch's start:
# the median agent and the last one (all ITEMS running).
# Also bubblewrap's own start: `bwrap … true` against `true`, 50 times each.
#
#   bench/sandbox.sh [ITEMS] [FILES] [ROUNDS]     e.g. bench/sandbox.sh 4 200 1 (a quick run)
set -euo pipefail
ITEMS=${1:-16}
FILES=${2:-2000}
ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${BIN:-}" ]; then :; else
    swift build -c release --package-path "$ROOT" >/dev/null
    BIN="$ROOT/.build/release/amplify-run"
fi
command -v bwrap >/dev/null || { echo "sandbox.sh: bubblewrap is not installed (apt install bubblewrap)"; exit 1; }

# Under /var/tmp: the sandbox gives each agent a private /tmp, which would hide the scripts.
WORK=$(mktemp -d /var/tmp/amplify-bench-sandbox-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"
cp "$ROOT/Tests/AmplifyStagesTests/Fixtures/fake-bd" "$WORK/bin/bd"
cat > "$WORK/bin/agent" <<'SH'
#!/bin/sh
date +%s.%N > "$AMPLIFY_SESSION_DIR/started"
sed 's/"status": *"running"/"status": "approved"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"
SH
chmod +x "$WORK/bin/agent"
export PATH="$WORK/bin:/usr/bin:/bin"
export GIT_AUTHOR_NAME=B GIT_AUTHOR_EMAIL=b@localhost GIT_COMMITTER_NAME=B GIT_COMMITTER_EMAIL=b@localhost

# The repository, made once and copied for each run.
template="$WORK/template"
mkdir -p "$template"
(
    cd "$template" && git init -q -b main
    for d in $(seq 1 $(( (FILES + 99) / 100 ))); do
        mkdir -p "src/d$d"
        for f in $(seq 1 100); do echo "file $d/$f" > "src/d$d/f$f.txt"; done
    done
    git add -A && git commit -qm files
)

# One run: MODE (none or bwrap). Prints "dispatch-median agent-running-median" in ms.
measure() {
    local mode=$1 repo="$WORK/run-$1"
    [ ! -e "$repo" ] || mv "$repo" "$repo-done"
    cp -a "$template" "$repo"
    mkdir -p "$repo/.beads"
    export BD_DB="$repo/.beads/db.jsonl"
    for i in $(seq 1 "$ITEMS"); do
        echo "{\"id\":\"s-$i\",\"title\":\"Item s-$i\",\"description\":\"\",\"status\":\"open\",\"priority\":1,\"issue_type\":\"task\",\"created_at\":\"2026-11-20T09:00:00Z\",\"dependencies\":[]}"
    done > "$BD_DB"
    cat > "$repo/wf.yaml" <<YAML
version: 1
settings: {base: main, poll: 200ms, concurrency: $ITEMS, sandbox: $mode}
stages:
  ready: {uses: query-ready, with: {source: bd}}
  dispatch:
    uses: dispatch
    for-each: \${{ stages.ready.outputs.items }}
    with: {agent: [agent], prompt: "Item \${{ item.id }}"}
  approved: {uses: wait-approved, with: {resume: ["true"]}}
YAML
    (cd "$repo" && git add wf.yaml && git commit -qm wf && printf '/.beads/\n' >> .git/info/exclude)
    # Every run starts on a settled disk: the writeback of the run before (16 checkouts) would
    # otherwise land in this one's figures.
    rm -rf "$WORK"/run-*-done; sync; sleep 2
    (cd "$repo" && "$BIN" wf.yaml >/dev/null 2>&1) || { echo "sandbox.sh: the $mode run failed" >&2; (cd "$repo" && "$BIN" status) >&2; exit 1; }
    python3 - "$repo" <<'PY'
import json, sys, glob, os, statistics
from datetime import datetime
repo = sys.argv[1]
def t(s): return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
started, ended, ids = {}, {}, {}
for line in open(glob.glob(repo + "/.amplify/runs/*/journal.jsonl")[0]):
    e = json.loads(line)
    if e.get("type") == "items-added" and e.get("stage") == "dispatch":
        ids = {i: item["id"] for i, item in enumerate(e["items"])}
    if e.get("stage") != "dispatch": continue
    if e["type"] == "instance-started": started[e["item"]] = t(e["at"])
    if e["type"] == "instance-succeeded": ended[e["item"]] = t(e["at"])
dispatch = [ended[i] - started[i] for i in ended]
# When each agent runs, inside its walls, counted from the run's first dispatch.
first = min(started.values())
running = []
for i in started:
    for d in glob.glob(f"{repo}/.amplify/sessions/{ids[i]}-*/started") + glob.glob(f"{repo}/.amplify/archive/{ids[i]}-*/started"):
        running.append(float(open(d).read()) - first)
print(f"{statistics.median(dispatch) * 1000:.0f} {statistics.median(running) * 1000:.0f} {max(running) * 1000:.0f}")
PY
}

echo "sandbox.sh: $ITEMS items at once, $FILES files, $ROUNDS round(s), $(bwrap --version)"
printf '%-7s %-6s %14s %26s %20s\n' round mode "dispatch (ms)" "median agent runs (ms)" "all running (ms)"
declare -A dsum rsum lsum
for r in $(seq 1 "$ROUNDS"); do
    for mode in none bwrap; do
        read -r d a l < <(measure "$mode")
        printf '%-7s %-6s %14s %26s %20s\n' "$r" "$mode" "$d" "$a" "$l"
        dsum[$mode]+="$d "; rsum[$mode]+="$a "; lsum[$mode]+="$l "
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
dn=$(echo "${dsum[none]}" | median); db=$(echo "${dsum[bwrap]}" | median)
rn=$(echo "${rsum[none]}" | median); rb=$(echo "${rsum[bwrap]}" | median)
ln=$(echo "${lsum[none]}" | median); lb=$(echo "${lsum[bwrap]}" | median)
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
echo "median of rounds: a dispatch $dn ms without, $db ms with the sandbox ($(ratio "$db" "$dn")×); all $ITEMS agents running after $ln ms without, $lb ms with ($(ratio "$lb" "$ln")×)"

# bubblewrap's own start, with a session's walls.
walls=(bwrap --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try --cap-drop ALL --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp
       --tmpfs /run --tmpfs "$WORK/template/.git/info" --bind "$WORK/bin" "$WORK/bin" --remount-ro /run --)
s=$(date +%s%N); for _ in $(seq 50); do /bin/true; done; e=$(date +%s%N)
plain=$(( (e - s) / 50 / 1000 ))
s=$(date +%s%N); for _ in $(seq 50); do "${walls[@]}" /bin/true; done; e=$(date +%s%N)
boxed=$(( (e - s) / 50 / 1000 ))
echo "a process: /bin/true $plain µs; inside bubblewrap's walls $boxed µs (50 each)"
