#!/usr/bin/env bash
# The merge queue (SPEC §10): ITEMS approved items (16), a `verify` that takes VERIFY seconds (2),
# landed one at a time and in batches, with and without a failing item, `verify-concurrency: 2`
# and `speculate`. For each, prints the verifications used, where the failing item stood in the
# queue, and the landing time (from the first verification's start to the run's end), next to
# one at a time in the same sitting. A measurement; with CHECK=1 it also fails when a batch of
# ITEMS uses more verifications than 1 + 2·log2 ITEMS with one failing, or more than 1 with none
# (counts, not timings: what the queue does, whatever the machine).
#
#   bench/merge-queue.sh [VERIFY] [ITEMS]     e.g. bench/merge-queue.sh 0.2 8 (a quick run)
set -euo pipefail
VERIFY=${1:-2}
ITEMS=${2:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${BIN:-}" ]; then :; else
    swift build -c release --package-path "$ROOT" >/dev/null
    BIN="$ROOT/.build/release/amplify-run"
fi
FIXTURES="$ROOT/Tests/AmplifyStagesTests/Fixtures"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/bin"
cp "$FIXTURES/fake-bd" "$WORK/bin/bd"
cp "$FIXTURES/fake-agent" "$WORK/bin/fake-agent"
export PATH="$WORK/bin:/usr/bin:/bin"
export GIT_AUTHOR_NAME=B GIT_AUTHOR_EMAIL=b@localhost GIT_COMMITTER_NAME=B GIT_COMMITTER_EMAIL=b@localhost

# One run: NAME, the merge stage's `with` keys, the failing item ("" for none). Prints a row.
measure() {
    local name=$1 keys=$2 bad=$3
    local repo="$WORK/$name"
    mkdir -p "$repo/.beads"
    export BD_DB="$repo/.beads/db.jsonl" AGENT_LOG="$repo/.beads/agent-starts"
    for i in $(seq 1 "$ITEMS"); do
        echo "{\"id\":\"b-$i\",\"title\":\"Item b-$i\",\"description\":\"behave:approve\",\"status\":\"open\",\"priority\":1,\"issue_type\":\"task\",\"created_at\":\"2026-11-20T09:00:00Z\",\"dependencies\":[]}"
    done > "$BD_DB"
    local test="true"
    [ -z "$bad" ] || test="test ! -e $bad.txt"
    cat > "$repo/wf.yaml" <<YAML
version: 1
settings: {base: main, poll: 200ms, concurrency: $ITEMS}
stages:
  ready: {uses: query-ready, with: {source: bd}}
  dispatch:
    uses: dispatch
    for-each: \${{ stages.ready.outputs.items }}
    with:
      agent: [fake-agent, "-p", "\${{ prompt }}"]
      prompt: "Item \${{ item.id }}: behave:approve"
  approved:
    uses: wait-approved
    with: {resume: [fake-agent, "--resume", "\${{ session.agent-session }}", "-p", "\${{ answer }}"]}
  merge:
    uses: merge
    with: {batch-wait: 3s, $keys verify: ["date +%s.%N >> ../../../verify-starts; ls b-*.txt | tr '\\\\n' ' ' >> ../../../verify-saw; echo >> ../../../verify-saw; sleep $VERIFY; $test"]}
  close: {uses: close}
YAML
    (cd "$repo" && git init -q -b main && git add wf.yaml && git commit -qm init && printf '/.beads/\n/verify-*\n' >> .git/info/exclude)
    local status=0
    (cd "$repo" && "$BIN" wf.yaml >"$repo/.beads/out" 2>&1) || status=$?
    local end
    end=$(date +%s.%N)
    local used first landed position="-"
    used=$(wc -l < "$repo/verify-starts")
    first=$(head -n 1 "$repo/verify-starts")
    landed=$(cd "$repo" && git log main --format=%B | grep -c '^Amplify-Item: ' || true)
    if [ -n "$bad" ]; then
        # Where the failing item stood in the order of approval: its place in the first chain built.
        position=$(python3 - "$repo"/.amplify/runs/*/journal.jsonl "$bad" <<'PY'
import json, sys
path, bad = sys.argv[1], sys.argv[2]
seen = []
for line in open(path):
    e = json.loads(line)
    if e.get("type") == "note" and e.get("kind") == "batch":
        for item in e["fields"]["items"]:
            if item not in seen: seen.append(item)
print(seen.index(bad) + 1 if bad in seen else "?")
PY
)
    fi
    printf '%-34s %6s %8s %9.1f s %7s %5s\n' "$name" "$used" "$position" "$(awk "BEGIN { print $end - $first }")" "$landed" "$status"
    echo "$name $used" >> "$WORK/counts"
}

echo "merge queue: $ITEMS approved items, verify takes ${VERIFY}s; landing time = first verification's start to the run's end"
printf '%-34s %6s %8s %11s %7s %5s\n' "configuration" "verifs" "bad at" "landing" "landed" "exit"
measure "batch 1, one failing" "batch: 1," b-5
measure "batch $ITEMS, one failing" "batch: $ITEMS," b-5
measure "batch $ITEMS, none failing" "batch: $ITEMS," ""
measure "batch $ITEMS, one failing, vc 2" "batch: $ITEMS, verify-concurrency: 2," b-5
measure "batch 1, speculate, vc 2, one failing" "batch: 1, speculate: true, verify-concurrency: 2," b-5
measure "batch 4, speculate, vc 2, one failing" "batch: 4, speculate: true, verify-concurrency: 2," b-5

if [ -n "${CHECK:-}" ]; then
    limit=$(python3 -c "import math; print(1 + 2 * math.ceil(math.log2($ITEMS)))")
    one=$(grep "^batch $ITEMS, one failing " "$WORK/counts" | awk '{print $NF}')
    none=$(grep "^batch $ITEMS, none failing " "$WORK/counts" | awk '{print $NF}')
    [ "$one" -le "$limit" ] || { echo "merge-queue: FAIL: batch $ITEMS with one failing used $one verifications (at most $limit)"; exit 1; }
    [ "$none" -eq 1 ] || { echo "merge-queue: FAIL: batch $ITEMS with none failing used $none verifications (1)"; exit 1; }
    echo "merge-queue: ok: $one verifications with one failing (at most $limit), $none with none"
fi
