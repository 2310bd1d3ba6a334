#!/usr/bin/env bash
# Loads TPC-H lineitem into DuckLake and into tarn, alternating, codec for codec (zstd at
# level 1, tarn's default), unpartitioned and partitioned by month, and prints each run (take
# medians; the machine is noisy).
#
# Needs the peer scripts' venvs and data (`../shared/peers/setup.sh`, then `run_all.sh 1 3`,
# which writes $PEERS/data/sf1/lineitem.parquet) and a release `tarn`.
# Usage: bash benches/peers/write_vs_ducklake.sh [TARN_BINARY] [ROUNDS]
set -euo pipefail
TARN="${1:-target/release/tarn}"
ROUNDS="${2:-3}"
PEERS="${PEERS:-/tmp/peers}"
SRC="$PEERS/data/sf1/lineitem.parquet"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

ducklake() { # $1 codec, $2 partitioned (0/1)
  "$PEERS/venv15/bin/python" - "$1" "$2" "$WORK/lake" "$SRC" <<'PY'
import duckdb, os, shutil, sys, time
from duckdb_extensions import import_extension
codec, partitioned, lake, src = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
shutil.rmtree(lake, ignore_errors=True); os.makedirs(lake)
boot = duckdb.connect(); import_extension("ducklake", con=boot); boot.close()
con = duckdb.connect(); con.execute("SET threads = 2"); con.execute("LOAD ducklake")
con.execute(f"ATTACH 'ducklake:{lake}/meta.ducklake' AS lake (DATA_PATH '{lake}/data')")
con.execute(f"CALL lake.set_option('parquet_compression', '{codec}')")
if codec == "zstd":  # tarn's level (DuckLake's default is 3)
    con.execute("CALL lake.set_option('parquet_compression_level', 1)")
read = f"read_parquet('{src}')"
if partitioned:
    con.execute(f"CREATE TABLE lake.lineitem AS SELECT * FROM {read} LIMIT 0")
    con.execute("ALTER TABLE lake.lineitem SET PARTITIONED BY (year(l_shipdate), month(l_shipdate))")
    start = time.perf_counter()
    con.execute(f"INSERT INTO lake.lineitem SELECT * FROM {read}")
else:
    start = time.perf_counter()
    con.execute(f"CREATE TABLE lake.lineitem AS SELECT * FROM {read}")
elapsed = time.perf_counter() - start
files, size = con.execute("SELECT count(*), sum(data_file_size_bytes) FROM ducklake_list_files('lake', 'lineitem')").fetchone()
print(f"ducklake {codec:6} {'by month' if partitioned else 'whole   '} {elapsed:6.3f} s {files:4} files {size:>10} bytes")
PY
}

tarn() { # $1 codec, $2 partitioned (0/1)
  rm -rf "$WORK/w"
  local by="" ; [ "$2" = 1 ] && by="PARTITIONED BY (month(l_shipdate))"
  local start end
  start=$(date +%s.%N)
  "$TARN" -w "$WORK/w" -c "CREATE TABLE lineitem $by WITH ('write.parquet.compression-codec' = '$1') AS SELECT * FROM '$SRC'" >/dev/null
  end=$(date +%s.%N)
  printf 'tarn     %-6s %s %6.3f s %4d files %10d bytes\n' "$1" "$([ "$2" = 1 ] && echo 'by month' || echo 'whole   ')" \
    "$(echo "$end - $start" | bc)" "$(find "$WORK/w" -name '*.parquet' | wc -l)" "$(du -sb "$WORK/w" | cut -f1)"
}

for _ in $(seq "$ROUNDS"); do
  for partitioned in 0 1; do
    for codec in snappy zstd; do
      ducklake "$codec" "$partitioned"
      tarn "$codec" "$partitioned"
    done
  done
done
