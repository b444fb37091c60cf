#!/usr/bin/env bash
# Reference values for fedprof's BTYD features from the `lifetimes` Python package.
#
# Creates a venv (default /tmp/fedprof-venv-lifetimes), pip-installs lifetimes, and runs
# lifetimes_reference.py, which writes node/tests/data/lifetimes/transactions.csv (a seeded
# transaction table with several rows per day, same-day repeats and rows after as_of) and
# node/tests/data/lifetimes/expected.csv (lifetimes' summary_data_from_transaction_data with
# freq="D" and monetary values). Both files are committed; node/tests/pipeline_lifetimes.rs
# compares fedprof's features with them. Re-run only to regenerate them.
set -euo pipefail
cd "$(dirname "$0")"
venv="${FEDPROF_VENV_DIR:-${TMPDIR:-/tmp}/fedprof-venv-lifetimes}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet lifetimes
fi
"$venv/bin/python" lifetimes_reference.py ../../node/tests/data/lifetimes
