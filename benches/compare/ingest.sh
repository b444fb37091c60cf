#!/usr/bin/env bash
# Node ingest benchmark: fedprof's columnar pipeline against DuckDB, same data, same run.
#
# 10M transactions over 1M customers (`fedprof gen-data --scenario bank`, no dirty rows so both
# engines see the same rows), as CSV and as Parquet. Each engine computes per-customer features
# as of 2026-06-30 and writes them to Parquet:
#   fedprof: `fedprof features` (cleaning checks on every row, exact duplicate detection over all
#            columns, HMAC-SHA256 pseudonyms, lifetimes features, channel and category shares);
#   DuckDB:  ingest_duckdb.py, the same per-customer features in SQL (id normalization, as_of
#            filter, per-day totals, first-day total, shares), no pseudonyms or quarantine.
# Runs are interleaved (fedprof, duckdb, fedprof, ...) and the best of ROUNDS is kept, since this
# machine's timings drift; CPU seconds (user + system) and peak RSS come from GNU time, and the
# CPU column is the per-core cost (on a loaded 2-vCPU machine, wall time mostly measures the
# neighbours). The last line is
#   RATIO ingest-parquet <fedprof rows/s divided by DuckDB rows/s>   (wall clock; above 1: fedprof faster)
#
# Usage: benches/compare/ingest.sh [CUSTOMERS] [ROUNDS]   (defaults 1000000 and 3)
# Needs: cargo, python3 (a venv with duckdb is created under /tmp), GNU time.
set -euo pipefail
cd "$(dirname "$0")/../.."
customers=${1:-1000000}
rounds=${2:-3}
work=${FEDPROF_BENCH_DIR:-${TMPDIR:-/tmp}/fedprof-ingest-bench}
venv=${FEDPROF_VENV_DIR:-${TMPDIR:-/tmp}/fedprof-venv-duckdb}
target=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet -p fedprof
bin="$target/release/fedprof"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet duckdb
fi
mkdir -p "$work"
data="$work/data-$customers"
if [ ! -f "$data/branch-1/transactions.parquet" ]; then
  rm -rf "$data"
  /usr/bin/time -f "gen-data: %e s, peak RSS %M KiB" \
    "$bin" gen-data --scenario bank --nodes 1 --customers "$customers" --transactions-per-customer 10 \
    --dirty-per-million 0 --seed 7 --out "$data" > /dev/null
fi
rows=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['transaction_rows'])" "$data/branch-1/manifest.json")
key="$work/pseudonym.key"
[ -f "$key" ] || { python3 -c "import secrets; print(secrets.token_hex(32))" > "$key"; chmod 600 "$key"; }

# run ENGINE FORMAT -> "seconds peak_kib user_s sys_s"
run() {
  local engine=$1 format=$2 file="$data/branch-1/transactions.$2" log="$work/time.log"
  rm -f "$work/out-$engine.parquet"
  if [ "$engine" = fedprof ]; then
    /usr/bin/time -o "$log" -f "%e %M %U %S" "$bin" features --transactions "$file" --customer-col customer_id \
      --date-col date --amount-col amount --channel-col channel --category-col category \
      --as-of 2026-06-30 --pseudonym-key "$key" --out "$work/out-$engine.parquet" > /dev/null
  else
    /usr/bin/time -o "$log" -f "%e %M %U %S" "$venv/bin/python" benches/compare/ingest_duckdb.py "$file" \
      "$work/out-$engine.parquet" > /dev/null
  fi
  tail -n 1 "$log"
}

declare -A best_s best_m best_c
for format in parquet csv; do
  for engine in fedprof duckdb; do best_s[$engine-$format]=999999; best_m[$engine-$format]=0; done
  for _ in $(seq "$rounds"); do
    for engine in fedprof duckdb; do
      read -r s m u k < <(run "$engine" "$format")
      c=$(python3 -c "print(round($u + $k, 2))")
      if python3 -c "import sys; sys.exit(0 if float('$s') < float('${best_s[$engine-$format]}') else 1)"; then
        best_s[$engine-$format]=$s; best_m[$engine-$format]=$m
      fi
      if [ -z "${best_c[$engine-$format]:-}" ] || python3 -c "import sys; sys.exit(0 if $c < ${best_c[$engine-$format]} else 1)"; then
        best_c[$engine-$format]=$c
      fi
    done
  done
done

echo
echo "Ingest of $rows transactions / $customers customers, best of $rounds interleaved runs ($(nproc) vCPU):"
echo
echo "| engine | format | wall s | rows/s (wall) | CPU s (user+sys) | rows/s per core | peak RSS |"
echo "|---|---|---:|---:|---:|---:|---:|"
for format in parquet csv; do
  for engine in fedprof duckdb; do
    python3 -c "
s=float('${best_s[$engine-$format]}'); m=int('${best_m[$engine-$format]}'); c=float('${best_c[$engine-$format]}')
print(f'| $engine | $format | {s:.2f} | {$rows/s/1e6:.2f}M | {c:.2f} | {$rows/c/1e6:.2f}M | {m/1048576:.2f} GiB |')"
  done
done
echo
python3 -c "print(f'RATIO ingest-parquet {float(\"${best_s[duckdb-parquet]}\")/float(\"${best_s[fedprof-parquet]}\"):.2f}')"
