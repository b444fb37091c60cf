#!/usr/bin/env bash
# CI's part of the real-process fault tests (called by .ci/run after the other steps):
#  1. the namespace test (tests/faults/netns.sh: coordinator and three nodes in their own
#     network namespaces behind a 5%-loss, 100 ms RTT proxy) when root, else skipped;
#  2. a short kill -9 sample: FAULTS_CI_RUNS (default 4) seeded runs of tests/faults/killrun.py,
#     the victim and phase picked by the seed (FAULTS_CI_SEED, default 1, so CI is
#     reproducible; set another to widen coverage over time).
# Fails if the namespace test fails or any kill -9 run has an invariant violation.
# Time: about 25 s for the namespace test and 10-20 s per kill run (two at a time), about
# 1.5 minutes in all on a quiet machine (5 minutes measured beside a workspace build), once
# the release binary is
# built (it builds it if missing: `cargo build --release --locked`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${FEDPROF_BIN:-${CARGO_TARGET_DIR:-target}/release/fedprof}
if [ ! -x "$bin" ]; then
  cargo build --release --locked
fi
export FEDPROF_BIN=$bin

echo "== faults: network namespaces, 5% loss, 100 ms RTT (root only)"
tests/faults/netns.sh

runs=${FAULTS_CI_RUNS:-4}
first=${FAULTS_CI_SEED:-1}
echo "== faults: $runs kill -9 runs from seed $first"
PARALLEL=${FAULTS_CI_PARALLEL:-2} OUT=$(mktemp -d /tmp/fedprof-faults-ci.XXXXXX) benches/faults.sh "$runs" "$first" | tee /tmp/fedprof-faults-ci.table
ratio=$(awk '/^RATIO faults-clean/ {print $3}' /tmp/fedprof-faults-ci.table)
if [ "$ratio" != "1.000" ]; then
  echo "error: kill -9 runs with invariant violations (RATIO faults-clean $ratio); see above" >&2
  exit 1
fi
