#!/usr/bin/env bash
# Dependencies point one way: spec <- core <- datafusion <- cli.
# tarn-spec is a pure model (no async runtime, no IO, no engine); tarn-core knows no engine.
set -euo pipefail
cd "$(dirname "$0")/.."

forbid() {
    local crate=$1
    shift
    local tree
    tree=$(cargo tree --locked -p "$crate" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
    for dep in "$@"; do
        if grep -qx "$dep" <<<"$tree"; then
            echo "layering violation: $crate depends on $dep" >&2
            cargo tree --locked -p "$crate" -e normal -i "$dep" >&2 || true
            exit 1
        fi
    done
    echo "layering ok: $crate has none of: $*"
}

forbid tarn-spec tokio object_store datafusion arrow parquet tarn-core tarn-datafusion
forbid tarn-core datafusion tarn-datafusion
