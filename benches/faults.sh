#!/usr/bin/env bash
# The fault table: N seeded kill -9 runs of the real binary (tests/faults/killrun.py), spread
# over parties (the coordinator or one of three nodes) and protocol phases, a third of them
# during a short profiling job. Prints the table and, last, `RATIO faults-clean <fraction of
# runs with zero invariant violations>`. Records go to $OUT/runs.jsonl; the work directory of a
# run with a violation is kept in $OUT/run-<seed>/ to reproduce it:
#   python3 tests/faults/killrun.py --seed <seed> [--profile] --work /tmp/x --keep
#
# Usage: benches/faults.sh [RUNS (default 120)] [FIRST_SEED (default 1)]
# Env: PARALLEL (runs at a time, default 1; each run has its own ports and directory),
#      LOSS (datagram loss of the loopback proxy, default 0; e.g. 0.05 for kills on a lossy
#      network), FEDPROF_BIN (default target/release/fedprof, built with `cargo build --release`),
#      OUT (default a new temporary directory).
# Time: about 10 s per totals run and 20 s per profiling run on 2 busy cores.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-120}
first=${2:-1}
bin=${FEDPROF_BIN:-${CARGO_TARGET_DIR:-target}/release/fedprof}
[ -x "$bin" ] || { echo "error: $bin not found; run cargo build --release first" >&2; exit 2; }
out=${OUT:-$(mktemp -d /tmp/fedprof-faults.XXXXXX)}
mkdir -p "$out"
records="$out/runs.jsonl"
parallel=${PARALLEL:-1}
echo "faults: $runs runs from seed $first, $parallel at a time, records in $records" >&2
run_one() {
  local seed=$1 profile=()
  # Every third run kills during a profiling job (at its first, second or third release).
  if (( seed % 3 == 0 )); then profile=(--profile); fi
  # A run is bounded: a wedged run is killed and recorded as a harness error.
  local rc=0
  timeout --kill-after=10 900 python3 tests/faults/killrun.py --bin "$bin" --seed "$seed" \
    --loss "${LOSS:-0}" "${profile[@]}" --work "$out/run-$seed" > "$out/run-$seed.json" 2> "$out/run-$seed.stderr" || rc=$?
  if (( rc == 124 || rc == 137 )); then
    echo "{\"seed\": $seed, \"harness_error\": \"timed out\"}" > "$out/run-$seed.json"
  fi
  if [ "$rc" = 0 ]; then rm -f "$out/run-$seed.stderr"; fi
  echo "  seed $seed: rc $rc" >&2
}
export -f run_one
export bin out LOSS
seq "$first" $((first + runs - 1)) | xargs -P "$parallel" -I{} bash -c 'run_one {}'
for ((seed = first; seed < first + runs; seed++)); do cat "$out/run-$seed.json"; done > "$records"
python3 tests/faults/table.py "$records"
