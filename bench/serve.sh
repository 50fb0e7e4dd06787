#!/usr/bin/env bash
# The dashboard (`amplify-run serve`, SPEC §9): the cost of its API, its event stream and its page,
# over real finished runs. A measurement, not a test: it prints figures and their targets.
#
#   bench/serve.sh [ITEMS] [PAGE_ITEMS]     (defaults 10000, 1000)
#
# Makes two real runs in a temp sandbox (ITEMS and PAGE_ITEMS items × 2 no-op `run` stages, as
# overhead.sh does), then bench/serve.py times, against `amplify-run serve --listen 127.0.0.1:0`:
#   1. GET /api/runs/RUN of the ITEMS run (curl, median of 5; target < 0.3 s), and `status --json`;
#   2. a journal append until its event arrives on an open event stream (median of 20; < 1 s);
#   3. the server's CPU with 20 idle event streams open for 20 s (target ≈ 0);
#   4. the page of the PAGE_ITEMS run in headless Chromium until every item row exists (median of
#      3; < 1 s). Needs /usr/bin/chromium, /usr/bin/chromedriver and python3 with selenium.
set -euo pipefail
ITEMS=${1:-10000}
PAGE_ITEMS=${2:-1000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=$(( 4 * $(nproc) ))

swift build -c release --package-path "$ROOT" >/dev/null
BIN="$ROOT/.build/release/amplify-run"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# A finished run of N items: the items printed by a command (query-ready, source: command), then
# two chained no-op stages per item.
make_run() {
  local dir=$1 n=$2
  mkdir -p "$dir" && cd "$dir" && git init -q .
  python3 -c 'import json, sys; print(json.dumps([{"id": f"i-{i}"} for i in range(int(sys.argv[1]))]))' "$n" > items.json
  cat > bench.yaml <<YAML
version: 1
settings: {max-processes: $JOBS}
stages:
  list:
    uses: query-ready
    with: {source: command, command: [cat, items.json]}
  one:
    for-each: \${{ stages.list.outputs.items }}
    run: [/bin/true]
  two:
    run: [/bin/true]
YAML
  local s e
  s=$(date +%s%N)
  "$BIN" bench.yaml --new > run.log
  e=$(date +%s%N)
  echo "made a finished run of $n items in $(( (e - s) / 1000000 )) ms"
}
make_run "$WORK/big" "$ITEMS"
make_run "$WORK/page" "$PAGE_ITEMS"
sync; sleep 1   # the journals were just written: let writeback finish, as it has for any real run

python3 "$ROOT/bench/serve.py" "$BIN" "$WORK/big" "$WORK/page"
