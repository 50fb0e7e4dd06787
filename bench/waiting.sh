#!/usr/bin/env bash
# CPU the runner uses while SESSIONS agent sessions wait for approval: the default pipeline with
# scripts playing bd and the agent (the agents never decide), measured from /proc over SECONDS
# once every session is live. Target: < 1% of one core.
#   bench/waiting.sh [SESSIONS] [SECONDS]     (defaults 50, 20)
set -euo pipefail
SESSIONS=${1:-50}
SECONDS_TO_MEASURE=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
swift build -c release --package-path "$ROOT" >/dev/null
BIN="$ROOT/.build/release/amplify-run"
WORK=$(mktemp -d)
cleanup() { [ -n "${RUNNER:-}" ] && kill -KILL "$RUNNER" 2>/dev/null; pkill -KILL -f "$WORK/" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/bin" "$WORK/repo/.beads"
cp "$ROOT/Tests/AmplifyStagesTests/Fixtures/fake-bd" "$WORK/bin/bd"
cp "$ROOT/Tests/AmplifyStagesTests/Fixtures/fake-agent" "$WORK/bin/fake-agent"
export PATH="$WORK/bin:/usr/bin:/bin" BD_DB="$WORK/repo/.beads/db.jsonl" AGENT_LOG="$WORK/agent-starts"
export GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@e
for i in $(seq 1 "$SESSIONS"); do
  echo "{\"id\":\"w-$i\",\"title\":\"Item w-$i\",\"description\":\"behave:hang\",\"status\":\"open\",\"priority\":1,\"issue_type\":\"task\",\"created_at\":\"2026-11-20T09:00:00Z\",\"dependencies\":[]}"
done > "$BD_DB"
cd "$WORK/repo"
cat > wf.yaml <<YAML
version: 1
settings: {base: main, concurrency: $SESSIONS}
vars: {agent: fake-agent}
stages:
  ready: {uses: query-ready, with: {source: bd, refill: true}}
  dispatch:
    uses: dispatch
    for-each: \${{ stages.ready.outputs.items }}
    with: {agent: ["\${{ vars.agent }}", "-p", "\${{ prompt }}"], prompt: "\${{ item.description }}"}
  approved: {uses: wait-approved, timeout: 1h, with: {resume: ["\${{ vars.agent }}", "--resume", "\${{ session.agent-session }}", "-p", "\${{ answer }}"]}}
  merge: {uses: merge}
  close: {uses: close}
  cleanup: {uses: cleanup, if: "\${{ always() }}"}
YAML
git init -q -b main && git add wf.yaml && git commit -qm init
"$BIN" wf.yaml >"$WORK/runner.log" 2>&1 &
RUNNER=$!
until [ -f "$AGENT_LOG" ] && [ "$(wc -l < "$AGENT_LOG")" -ge "$SESSIONS" ]; do sleep 0.2; done
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$RUNNER/stat"; }
t0=$(ticks); sleep "$SECONDS_TO_MEASURE"; t1=$(ticks)
hz=$(getconf CLK_TCK)
awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$SECONDS_TO_MEASURE" -v n="$SESSIONS" -v rss="$(awk '/VmHWM/ {print $2}' /proc/$RUNNER/status)" \
  'BEGIN { printf "%d sessions waiting for approval: runner CPU %.2f%% of one core over %d s (%d ticks); peak RSS %.1f MiB\n", n, 100 * d / hz / s, s, d, rss / 1024 }'
