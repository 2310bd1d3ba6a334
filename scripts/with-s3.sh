#!/usr/bin/env bash
# Runs a command beside a local S3-compatible server: moto's server mode, on 127.0.0.1,
# installed into a virtualenv on first use. The command sees the bucket in TARN_TEST_S3 and
# the AWS_* variables that reach the server; the server stops when the command ends.
#
#   scripts/with-s3.sh cargo test --workspace -- --include-ignored
#   scripts/with-s3.sh tarn --warehouse s3://tarn-test/mine
#   TARN_S3_LATENCY_MS=20 scripts/with-s3.sh tarn-bench object-store   # each request waits 20 ms
set -euo pipefail

MOTO_VERSION=5.2.5
venv="${TARN_S3_VENV:-$HOME/.cache/tarn/s3-venv}"
if ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "with-s3: installing moto $MOTO_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="${TMPDIR:-/tmp}/tarn-moto-$port.log"
# moto's own server, with conditional writes made atomic as on S3 (see s3-server.py).
"$venv/bin/python" "$(dirname "$0")/s3-server.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "$endpoint/"; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "with-s3: moto did not start; its log:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
curl -sf -o /dev/null -X PUT "$endpoint/tarn-test"

export AWS_ENDPOINT="$endpoint" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export TARN_TEST_S3=s3://tarn-test
echo "with-s3: moto $MOTO_VERSION at $endpoint, bucket $TARN_TEST_S3" >&2
"$@"
