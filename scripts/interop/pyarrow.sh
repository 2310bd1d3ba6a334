#!/usr/bin/env bash
# Writes a table with nested columns through the tarn binary given, then reads its data
# files with pyarrow (installed into a virtualenv on first use) and checks them.
#
#   scripts/interop/pyarrow.sh target/debug/tarn
set -euo pipefail
tarn="$(realpath "$1")"
cd "$(dirname "$0")"

# pyarrow 21 and older cannot read a NULL fixed-size list back from Parquet, even one
# written by pyarrow itself ("Expected all lists to be of size=3").
PYARROW_VERSION=26.0.1
venv="${TARN_INTEROP_VENV:-$HOME/.cache/tarn/interop-venv}"
if ! "$venv/bin/python" -c "import pyarrow, sys; sys.exit(pyarrow.__version__ != '$PYARROW_VERSION')" 2>/dev/null; then
    echo "interop: installing pyarrow $PYARROW_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pyarrow==$PYARROW_VERSION"
fi

warehouse="$(mktemp -d)"
trap 'rm -rf "$warehouse"' EXIT
"$tarn" --quiet --warehouse "$warehouse" --file nested.sql
"$venv/bin/python" read_nested.py "$warehouse/default/f/data"
