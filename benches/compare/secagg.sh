#!/usr/bin/env bash
# fedprof's secure-aggregation round against Flower's SecAgg+ (SecAggPlusWorkflow on the server,
# secaggplus_mod on the clients) at the same n, d and neighbourhood (Flower's num_shares = our
# neighbours + 1), both entirely in one process, interleaved, best of several.
#
# Flower's simulation engine needs Ray; instead `secagg_flower.py` drives Flower's own workflow
# and mod through a minimal in-process message router (each message deep-copied, as a transport
# would serialize it). The fedprof side is `secagg/benches/round.rs` in `compare` mode.
#
# Creates a private virtualenv outside the work tree (default
# ${XDG_CACHE_HOME:-~/.cache}/fedprof/venv-flwr, override with FLWR_VENV) with the pinned flwr
# from PyPI. Run from anywhere:
#
#     bash benches/compare/secagg.sh            # n=50, d=100000, 3 shares, 5 rounds each
#     N=50 D=100000 SHARES=3 ROUNDS=5 bash benches/compare/secagg.sh
#
# The last line is `RATIO secagg <Flower's best round time / fedprof's best round time>` (wall
# clock); the line before it compares the best rounds' CPU time (`CPU RATIO`, Linux only).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${FEDPROF_ROOT:-$(cd "$here/../.." && pwd)}"
venv="${FLWR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fedprof/venv-flwr}"
version="1.42.0"
n="${N:-50}"
d="${D:-100000}"
shares="${SHARES:-3}"
rounds="${ROUNDS:-5}"
neighbours=$((shares - 1))

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "flwr==$version"

echo "building the fedprof bench (release)..." >&2
(cd "$root" && cargo bench -q -p fedprof-secagg --bench round --no-run 2>/dev/null)

best_fedprof=""
best_flower=""
cpu_fedprof=""
cpu_flower=""
min() { python3 -c "import sys; a=[float(x) for x in sys.argv[1:] if x]; print(min(a))" "$@"; }
for i in $(seq 1 "$rounds"); do
    out=$(cd "$root" && cargo bench -q -p fedprof-secagg --bench round -- compare "$n" "$d" "$neighbours" 1 2>/dev/null)
    f=$(echo "$out" | awk '/^fedprof_round_seconds/ {print $2}')
    fc=$(echo "$out" | awk '/^fedprof_round_cpu_seconds/ {print $2}')
    out=$("$venv/bin/python" -P "$here/secagg_flower.py" "$n" "$d" "$shares" 1 2>/dev/null)
    w=$(echo "$out" | awk '/^flower_round_seconds/ {print $2}')
    wc=$(echo "$out" | awk '/^flower_round_cpu_seconds/ {print $2}')
    echo "round $i: fedprof ${f} s (cpu ${fc:-?} s), flower ${w} s (cpu ${wc} s)" >&2
    best_fedprof=$(min "$f" "$best_fedprof")
    best_flower=$(min "$w" "$best_flower")
    if [ -n "$fc" ] && [ -n "$wc" ]; then
        cpu_fedprof=$(min "$fc" "$cpu_fedprof")
        cpu_flower=$(min "$wc" "$cpu_flower")
    fi
done

echo
echo "| system | n | d | shares (neighbourhood) | threshold | best round, s (of $rounds) | best round CPU, s |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| fedprof secagg (sparse, k=$neighbours) | $n | $d | $shares | 2 | $best_fedprof | $cpu_fedprof |"
echo "| Flower $version SecAgg+ | $n | $d | $shares | 2 | $best_flower | $cpu_flower |"
echo
# CPU time (Linux) tells the rounds' own cost apart from waiting for a loaded machine's cores.
if [ -n "$cpu_fedprof" ]; then
    python3 -c "import sys; print(f'CPU RATIO secagg {float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$cpu_flower" "$cpu_fedprof"
fi
python3 -c "import sys; print(f'RATIO secagg {float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$best_flower" "$best_fedprof"
