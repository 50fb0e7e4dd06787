#!/usr/bin/env bash
# `amplify-run validate workflows/default.yaml` as a whole process (release build): median of RUNS.
#   bench/validate.sh [RUNS]     (default 50)
set -euo pipefail
RUNS=${1:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
swift build -c release --package-path "$ROOT" >/dev/null
BIN="$ROOT/.build/release/amplify-run"
times=()
for r in $(seq 1 "$RUNS"); do
  s=$(date +%s%N); "$BIN" validate "$ROOT/workflows/default.yaml" >/dev/null; e=$(date +%s%N)
  times+=("$(( (e - s) / 100000 ))")
done
printf '%s\n' "${times[@]}" | sort -n | awk -v n="$RUNS" '{a[NR]=$1} END {printf "validate workflows/default.yaml, whole process: median %.1f ms, fastest %.1f ms, slowest %.1f ms (%d runs)\n", a[int((NR+1)/2)]/10, a[1]/10, a[NR]/10, n}'
