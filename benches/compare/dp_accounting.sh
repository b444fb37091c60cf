#!/usr/bin/env bash
# Reference values for fedprof's (epsilon, delta) conversion, from Google's dp-accounting.
#
# Creates a private virtualenv outside the work tree (default:
# ${XDG_CACHE_HOME:-~/.cache}/fedprof/venv-dp-accounting, override with DP_ACCOUNTING_VENV), installs the pinned dp-accounting from PyPI, and regenerates
# privacy/tests/data/dp_accounting_reference.json, which `cargo test -p fedprof-privacy`
# checks fedprof against. Run from anywhere:
#
#     bash benches/compare/dp_accounting.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${DP_ACCOUNTING_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/fedprof/venv-dp-accounting}"
version="0.6.0"

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "dp-accounting==$version"
"$venv/bin/python" -P "$here/dp_accounting.py" --out "$root/privacy/tests/data/dp_accounting_reference.json"
