#!/usr/bin/env bash
# Two whole-process timings on real state directories (release build), medians of RUNS:
#   - `amplify-run status` of a finished run of 10,000 items (journal replay included);
#   - resuming an unfinished run of 100,000 journal events until its first new action starts
#     (the resumed runner's next instance writes the time it started).
# The runs are written by `amplify-bench write-run` (every instance succeeded, as a run leaves them).
#
#   bench/resume-status.sh [RUNS]     (default 5)
set -euo pipefail
RUNS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
swift build -c release --package-path "$ROOT" >/dev/null
BIN="$ROOT/.build/release/amplify-run"
BENCH="$ROOT/.build/release/amplify-bench"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
git init -q .
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { echo $(( ($(date +%s%N) ) / 1000000 )); }

read -r id events < <("$BENCH" write-run "$WORK" 10000 finished)
sync; sleep 1   # the journal was just written: let writeback finish, as it has for any real run
status_times=()
for r in $(seq 1 "$RUNS"); do
  s=$(date +%s%N); "$BIN" status "$id" >/dev/null; e=$(date +%s%N)
  status_times+=("$(( (e - s) / 1000000 ))")
done
echo "status of a finished run of 10,000 items ($events events, $(du -h .amplify/runs/$id/journal.jsonl | cut -f1) journal):"
echo "  median $(printf '%s\n' "${status_times[@]}" | median) ms   (runs: ${status_times[*]} ms)"

resume_times=()
for r in $(seq 1 "$RUNS"); do
  rm -rf .amplify first-action
  read -r id events < <("$BENCH" write-run "$WORK" 16666 unfinished)
  sync; sleep 1
  s=$(date +%s%N); "$BIN" bench.yaml >/dev/null; e=$(cat first-action)
  resume_times+=("$(( (e - s) / 1000000 ))")
done
echo "resume of an unfinished run of $events events to its first new action:"
echo "  median $(printf '%s\n' "${resume_times[@]}" | median) ms   (runs: ${resume_times[*]} ms)"
