#!/usr/bin/env bash
# Utility of a profiling job on the bank scenario: fedprof's federated DP k-means (cost, and the
# error of the released cluster sizes) at rho in {0.05, 0.5, 2} against the non-private pooled
# k-means (scikit-learn) and diffprivlib's central DP KMeans at epsilon = sqrt(2 rho) (pure
# epsilon-DP implies epsilon^2/2-zCDP), with fedprof in three noise settings: distributed
# (n_min = 3, 1 colluder: two honest shares), three honest shares (n_min = 4, 1 colluder, the
# noise the old "no colluders" setting added) and the demo's default (n_min = 2, 1 colluder:
# one honest share, as node-level local DP). At least one colluder is always assumed: every node
# receives the result and knows its own noise. Then the wall time of `fedprof demo`.
#
# The fedprof side is `benches/utility.rs` (`cargo bench --bench utility`, release): it
# generates the demo's federation, computes every node's features and drives the profiling job
# in process (plan_query as the coordinator, noisy() at every node, the sum secure aggregation
# releases), then writes the pooled points and its results for `utility.py`.
#
# Creates a private virtualenv outside the work tree (default
# ${XDG_CACHE_HOME:-~/.cache}/fedprof/venv-utility, override with UTILITY_VENV) with pinned
# diffprivlib, scikit-learn and numpy from PyPI (diffprivlib 0.6.6 imports private names that
# scikit-learn 1.7+ removed, hence scikit-learn 1.6.1). Honours CARGO_TARGET_DIR. Run from anywhere:
#
#     bash benches/compare/utility.sh                 # 100k customers, 100 runs per setting
#     CUSTOMERS=100000 REPS=200 DP_SEEDS=20 bash benches/compare/utility.sh
#
# REPS is the number of fedprof runs per rho and noise setting (the bench alone defaults to 5):
# the count-error ratio is an RMS over REPS x 5 clusters, so 100 runs pin it to about 3%.
# DP_SEEDS is the number of diffprivlib fits averaged per epsilon.
#
# The last line is `RATIO kmeans-cost <fedprof cost / non-private cost>` at rho = 0.5, i.e.
# epsilon = sqrt(2 * 0.5) = 1 (distributed setting n_min = 3, 1 colluder).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${FEDPROF_ROOT:-$(cd "$here/../.." && pwd)}"
venv="${UTILITY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fedprof/venv-utility}"
customers="${CUSTOMERS:-100000}"
reps="${REPS:-100}"
dp_seeds="${DP_SEEDS:-20}"
target="${CARGO_TARGET_DIR:-$root/target}"

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "diffprivlib==0.6.6" "scikit-learn==1.6.1" "numpy==2.4.6" "scipy==1.17.1"

work="$(mktemp -d "${TMPDIR:-/tmp}/fedprof-utility.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "building and running the fedprof utility bench (release)..." >&2
(cd "$root" && CUSTOMERS="$customers" REPS="$reps" UTILITY_OUT="$work" \
    cargo bench -q --bench utility) | tee "$work/fedprof.txt"

echo "timing fedprof demo (release build)..." >&2
(cd "$root" && cargo build -q --release --bin fedprof)
start=$(date +%s.%N)
"$target/release/fedprof" demo --out "$work/demo" --customers "$customers" >"$work/demo.txt" 2>"$work/demo.err"
end=$(date +%s.%N)
demo_seconds=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$end")
echo
echo "fedprof demo, $customers customers, 3 nodes: ${demo_seconds} s wall ($(grep -o 'Demo finished in [0-9.]* s' "$work/demo.txt" || echo 'no finish line'))"
echo

"$venv/bin/python" -P "$here/utility.py" "$work/points.csv" "$work/fedprof.json" --seeds "$dp_seeds"
