#!/usr/bin/env bash
# N items × 3 chained no-op `run` stages through amplify-run, and the same commands through
# `make -j` (the floor for running commands in a DAG), in one go. Prints wall times, the ratio,
# and amplify-run's peak memory. A measurement, not a test.
#
#   bench/overhead.sh [N] [RUNS]      (defaults: 1000 items, 3 runs; medians are reported)
#
# With Snakemake on PATH (or SNAKEMAKE=/path/to/snakemake), the same DAG runs through it too:
#   python3 -m venv /tmp/snake && /tmp/snake/bin/pip install snakemake && SNAKEMAKE=/tmp/snake/bin/snakemake bench/overhead.sh
set -euo pipefail
N=${1:-1000}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=$(( 2 * $(nproc) ))

# BIN: a binary built elsewhere (another commit's, to compare in one sitting).
if [ -z "${BIN:-}" ]; then
    swift build -c release --package-path "$ROOT" >/dev/null
    BIN="$ROOT/.build/release/amplify-run"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
git init -q .

# The items: N objects with ids, printed by a command (query-ready, source: command).
python3 - "$N" > items.json <<'PY'
import json, sys
print(json.dumps([{"id": f"item-{i}"} for i in range(int(sys.argv[1]))]))
PY

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
  three:
    run: [/bin/true]
YAML

# The same DAG for make: three chained targets per item.
{
  printf 'all:'
  for i in $(seq 0 $((N - 1))); do printf ' three-%d' "$i"; done
  printf '\n'
  for i in $(seq 0 $((N - 1))); do
    printf 'one-%d:\n\t@/bin/true\ntwo-%d: one-%d\n\t@/bin/true\nthree-%d: two-%d\n\t@/bin/true\n' "$i" "$i" "$i" "$i" "$i"
  done
  printf '.PHONY: all'
  for i in $(seq 0 $((N - 1))); do printf ' one-%d two-%d three-%d' "$i" "$i" "$i"; done
  printf '\n'
} > Makefile

SNAKEMAKE=${SNAKEMAKE:-$(command -v snakemake || true)}
if [ -n "$SNAKEMAKE" ]; then
  # Snakemake needs files: each job runs the same no-op and touches its output.
  cat > Snakefile <<PY
rule all:
    input: expand("out/three-{i}", i=range($N))
rule one:
    output: "out/one-{i}"
    shell: "/bin/true; touch {output}"
rule two:
    input: "out/one-{i}"
    output: "out/two-{i}"
    shell: "/bin/true; touch {output}"
rule three:
    input: "out/two-{i}"
    output: "out/three-{i}"
    shell: "/bin/true; touch {output}"
PY
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

amp_times=(); make_times=(); amp_mem=(); snake_times=()
for r in $(seq 1 "$RUNS"); do
  rm -rf .amplify
  /usr/bin/time -f "%e %M" -o amp.time "$BIN" bench.yaml --new > amp.log
  read -r t m < amp.time
  amp_times+=("$t"); amp_mem+=("$m")
  /usr/bin/time -f "%e" -o make.time make -s -j"$JOBS" all
  make_times+=("$(cat make.time)")
  if [ -n "$SNAKEMAKE" ]; then
    rm -rf out .snakemake
    /usr/bin/time -f "%e" -o snake.time "$SNAKEMAKE" --cores "$JOBS" --quiet all >snake.log 2>&1
    snake_times+=("$(cat snake.time)")
  fi
done

AMP=$(printf '%s\n' "${amp_times[@]}" | median)
MAKE=$(printf '%s\n' "${make_times[@]}" | median)
MEM=$(printf '%s\n' "${amp_mem[@]}" | median)
EVENTS=$(wc -l < "$(ls -d .amplify/runs/*/ | tail -n 1)journal.jsonl")
echo "N=$N items × 3 no-op run stages, -j$JOBS, median of $RUNS runs on $(nproc) cores"
echo "  amplify-run: ${AMP} s   (runs: ${amp_times[*]}; $EVENTS journal events)"
echo "  make -j$JOBS:   ${MAKE} s   (runs: ${make_times[*]})"
awk -v a="$AMP" -v m="$MAKE" 'BEGIN { printf "  ratio:       %.2f× make\n", a / m }'
if [ -n "$SNAKEMAKE" ]; then
  SNAKE=$(printf '%s\n' "${snake_times[@]}" | median)
  echo "  snakemake:   ${SNAKE} s   (runs: ${snake_times[*]}; $("$SNAKEMAKE" --version))"
  awk -v a="$AMP" -v s="$SNAKE" 'BEGIN { printf "  snakemake / amplify-run: %.1f× (amplify-run is that much faster)\n", s / a }'
fi
awk -v k="$MEM" 'BEGIN { printf "  amplify-run peak memory (max RSS): %.1f MiB\n", k / 1024 }'
