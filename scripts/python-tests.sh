#!/usr/bin/env bash
# Builds the Python package (debug) into a virtualenv, created on first use with
# crates/tarn-python/requirements-test.txt, and runs its tests against the given shell.
#
#   scripts/python-tests.sh target/debug/tarn
#
# PyTorch is not installed here (about 3 GB with its CUDA wheels): its DataLoader test
# runs where torch is in the virtualenv, and the dataset's sharding is tested without it.
set -euo pipefail
tarn="$(realpath "$1")"
cd "$(dirname "$0")/.."

requirements=crates/tarn-python/requirements-test.txt
venv="${TARN_PYTHON_VENV:-$HOME/.cache/tarn/python-venv}"
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    echo "python: installing $requirements into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
fi

VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --quiet --locked -m crates/tarn-python/Cargo.toml
TARN_BIN="$tarn" "$venv/bin/python" -m pytest -q -rs crates/tarn-python/tests
