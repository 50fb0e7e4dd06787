#!/usr/bin/env bash
# A large repository: FOLDERS × FILES small files, ITEMS items whose agent commits one file and
# approves after a second, `concurrency: ITEMS`. Times each dispatch, merge and cleanup from the
# run's journal, the whole run, the whole run's git work done by git alone (a script), and single
# git operations by hand in the same repository (`git worktree add` of one worktree, `git
# merge-tree --write-tree` of one branch and the whole merge, `rm -rf` of one worktree), and
# prints the ratios. A measurement, not a test.
#
#   bench/big-repo.sh [FOLDERS] [FILES] [ITEMS]     (defaults: 500 × 100 = 50,000 files, 8 items)
#   RUN_FIRST=1 times the run before git alone (the second of the two pays the first's writeback).
set -euo pipefail
FOLDERS=${1:-500}
FILES=${2:-100}
ITEMS=${3:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

swift build -c release --package-path "$ROOT" >/dev/null
BIN="$ROOT/.build/release/amplify-run"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
REPO="$WORK/repo"
mkdir -p "$REPO" && cd "$REPO"
git init -q -b main .
git config user.name bench && git config user.email bench@localhost

# The repository: small files in many folders, one commit.
python3 - "$FOLDERS" "$FILES" <<'PY'
import os, sys
folders, files = int(sys.argv[1]), int(sys.argv[2])
for d in range(folders):
    os.makedirs(f"src/d{d:04}", exist_ok=True)
    for f in range(files):
        with open(f"src/d{d:04}/f{f:03}.txt", "w") as out:
            out.write(f"folder {d} file {f}\n")
PY
git add -A && git commit -qm "a large repository"
echo "repository: $(git ls-files | wc -l) files, $(du -sh .git | cut -f1) in .git"

# The tracker and the agent (it commits one file of its own and approves).
mkdir -p .beads bin
for i in $(seq 1 "$ITEMS"); do
  printf '{"id":"big-%d","title":"Item %d","status":"open","priority":1,"issue_type":"task","created_at":"2026-11-20T09:00:00Z"}\n' "$i" "$i"
done > .beads/issues.jsonl
cat > bin/agent <<'SH'
#!/bin/sh
sleep 1
echo "$AMPLIFY_ITEM_ID" > "$AMPLIFY_ITEM_ID.txt" && git add "$AMPLIFY_ITEM_ID.txt" && git commit -qm "$AMPLIFY_ITEM_ID"
sed 's/"status": *"running"/"status": "approved"/' "$AMPLIFY_SESSION_DIR/state.json" > "$AMPLIFY_SESSION_DIR/s.tmp" && mv "$AMPLIFY_SESSION_DIR/s.tmp" "$AMPLIFY_SESSION_DIR/state.json"
SH
chmod +x bin/agent
printf '/.beads/\n/bin/\n' >> .git/info/exclude
cat > wf.yaml <<YAML
version: 1
settings: {base: main, concurrency: $ITEMS, poll: 200ms}
stages:
  ready: {uses: query-ready, with: {source: file, path: .beads/issues.jsonl}}
  dispatch:
    uses: dispatch
    for-each: \${{ stages.ready.outputs.items }}
    with: {agent: [agent], prompt: "Item \${{ item.id }}"}
  approved: {uses: wait-approved, timeout: 30m, with: {resume: [agent, "\${{ answer }}"]}}
  merge: {uses: merge}
  close: {uses: close}
  cleanup: {uses: cleanup, if: "\${{ always() }}"}
YAML
git add wf.yaml && git commit -qm workflow

# Seconds since a `date +%s.%N`.
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }

# Before each timed phase, the disk is let settle: writing and deleting hundreds of thousands of
# files leaves the kernel seconds of writeback, which would be charged to whatever runs next.
settle() {
  sync
  for _ in $(seq 1 60); do
    [ "$(awk '/^(Dirty|Writeback):/ { kb += $2 } END { print kb }' /proc/meminfo)" -lt 4096 ] && break
    sleep 1
  done
  sleep 2
}

# Per stage: the time from each instance's start to its success, from the journal.
stage_times() {
  python3 - "$1" .amplify/runs/*/journal.jsonl <<'PY'
import json, sys
from datetime import datetime
stage, path = sys.argv[1], sys.argv[2]
started, took = {}, []
def t(s): return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
for line in open(path):
    e = json.loads(line)
    if e.get("stage") != stage: continue
    key = e.get("item")
    if e["type"] == "instance-started": started[key] = t(e["at"])
    elif e["type"] == "instance-succeeded" and key in started: took.append(t(e["at"]) - started.pop(key))
took.sort()
print(f"{took[len(took)//2]:.2f} {took[0]:.2f} {took[-1]:.2f}" if took else "- - -")
PY
}

# The whole run's work done by git alone, as a script that knew the answers would: the
# worktrees' entries one at a time and their checkouts side by side, each agent's commit after
# its second, each branch merged in the object store and the base fast-forwarded, each worktree
# removed. The floor for the run.
by_git_alone() {
  settle
  t0=$(date +%s.%N)
  for i in $(seq 1 "$ITEMS"); do git worktree add -q --no-checkout -b "alone-$i" "$WORK/alone-$i" main; done
  for i in $(seq 1 "$ITEMS"); do
    (cd "$WORK/alone-$i" && git reset -q --hard && sleep 1 && echo "$i" > "alone-$i.txt" && git add "alone-$i.txt" && git commit -qm "alone $i") &
  done
  wait
  for i in $(seq 1 "$ITEMS"); do
    (cd "$WORK/alone-$i" && git status --porcelain > /dev/null)
    tree=$(git merge-tree --write-tree main "alone-$i")
    commit=$(git commit-tree "$tree" -p main -p "alone-$i" -m "Merge alone-$i")
    git merge --ff-only -q "$commit"
  done
  for i in $(seq 1 "$ITEMS"); do mv "$WORK/alone-$i" "$WORK/.alone-$i"; done
  git worktree prune
  for i in $(seq 1 "$ITEMS"); do rm -rf "$WORK/.alone-$i" & done
  wait
  alone=$(since "$t0")
}
the_run() {
  # The run.
  settle
  start=$(date +%s.%N)
  PATH="$REPO/bin:$PATH" "$BIN" wf.yaml > "$WORK/run.log" 2>&1 || { tail -n 20 "$WORK/run.log"; exit 1; }
  run=$(since "$start")
}
# Which goes first is charged the other's writeback: RUN_FIRST=1 swaps them.
if [ -n "${RUN_FIRST:-}" ]; then the_run; by_git_alone; else by_git_alone; the_run; fi

read -r d_med d_min d_max < <(stage_times dispatch)
read -r m_med m_min m_max < <(stage_times merge)
read -r c_med c_min c_max < <(stage_times cleanup)

# One of each operation by hand, in the same repository.
settle
t0=$(date +%s.%N); git worktree add -q -b by-hand "$WORK/by-hand" main; wt=$(since "$t0")
(cd "$WORK/by-hand" && echo x > by-hand.txt && git add by-hand.txt && git commit -qm by-hand)
t0=$(date +%s.%N); git merge-tree --write-tree main by-hand > /dev/null; mt=$(since "$t0")
# The gits a merge cannot do without: the item's worktree checked for leftovers, the merge, and
# the fast-forward of the checkout that has the base.
t0=$(date +%s.%N)
(cd "$WORK/by-hand" && git status --porcelain --untracked-files=all > /dev/null)
commit=$(git commit-tree "$(git merge-tree --write-tree main by-hand)" -p main -p by-hand -m "Merge by-hand")
git merge --ff-only -q "$commit"
mfull=$(since "$t0")
t0=$(date +%s.%N); rm -rf "$WORK/by-hand"; rmt=$(since "$t0")
git worktree prune

echo "$ITEMS items, concurrency $ITEMS, on $(nproc) cores (median, min, max in seconds)"
echo "  dispatch: $d_med ($d_min–$d_max)    by hand, git worktree add: $(printf '%.2f' "$wt")"
echo "  merge:    $m_med ($m_min–$m_max)    by hand: git merge-tree --write-tree $(printf '%.3f' "$mt"); with the status of the worktree and the fast-forward of the checkout $(printf '%.2f' "$mfull")"
echo "  cleanup:  $c_med ($c_min–$c_max)    by hand, rm -rf of a worktree: $(printf '%.2f' "$rmt")"
echo "  whole run: $(printf '%.1f' "$run") s    target: ≤ 1.5 × ($ITEMS × git worktree add) + 10 s = $(awk -v n="$ITEMS" -v w="$wt" 'BEGIN { printf "%.1f", 1.5 * n * w + 10 }') s"
echo "  the same work by git alone: $(printf '%.1f' "$alone") s    the run: $(awk -v r="$run" -v a="$alone" 'BEGIN { printf "%.2f", r / a }')× (goal: ≤ 1.2×)"
