#!/usr/bin/env bash
# `amplify-run validate workflows/default.yaml` as a whole process (release build): median of RUNS.
#   bench/validate.sh [RUNS]     (default 50)
# STATIC=1 also builds with --static-swift-stdlib (into .build-static, ~2 min) and measures that:
# most of the time is the dynamic loader bringing in Foundation and the Swift runtime.
set -euo pipefail
RUNS=${1:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
swift build -c release --package-path "$ROOT" >/dev/null
measure() {
  local bin=$1 label=$2 times=()
  for r in $(seq 1 "$RUNS"); do
    s=$(date +%s%N); "$bin" validate "$ROOT/workflows/default.yaml" >/dev/null; e=$(date +%s%N)
    times+=("$(( (e - s) / 100000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$RUNS" -v l="$label" '{a[NR]=$1} END {printf "validate workflows/default.yaml, whole process, %s: median %.1f ms, fastest %.1f ms, slowest %.1f ms (%d runs)\n", l, a[int((NR+1)/2)]/10, a[1]/10, a[NR]/10, n}'
}
measure "$ROOT/.build/release/amplify-run" "release build"
if [ -n "${STATIC:-}" ]; then
  swift build -c release --static-swift-stdlib --product amplify-run --package-path "$ROOT" --scratch-path "$ROOT/.build-static" >/dev/null
  measure "$ROOT/.build-static/release/amplify-run" "release build, --static-swift-stdlib"
fi
