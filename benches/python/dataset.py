"""Rows per second of tarn's Python reads over TPC-H lineitem's numeric columns, against
pyarrow reading the very same Parquet files (the tarn table's own data files).

    python benches/python/dataset.py --parquet lineitem.parquet [--runs 5]

The lineitem file is loaded into a fresh tarn table (CREATE TABLE AS). Each run reads the
eight numeric columns (four integers, four DECIMAL(15,2)) of every row into NumPy arrays,
decimals as float64, as a training loop would get them:

- `pyarrow`: `pyarrow.dataset` over the data files, batches of 8,192 rows;
- `tarn scan`: `tarn.Table.scan` into pyarrow;
- `tarn dataset`: `tarn.torch.TarnDataset(output="numpy")`, one reader, batches of 8,192;
- `tarn dataset, shuffled`: the same with shard shuffling and a 65,536-row shuffle buffer.

The sides alternate within each run; every figure is the median of the runs after a
warm-up. Runs with one process: a DataLoader's workers each read a share of the files.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

import tarn
from tarn.torch import TarnDataset

COLUMNS = [
    "l_orderkey", "l_partkey", "l_suppkey", "l_linenumber",
    "l_quantity", "l_extendedprice", "l_discount", "l_tax",
]
BATCH = 8192


def to_numpy(batch: pa.RecordBatch) -> dict:
    out = {}
    for name, column in zip(batch.schema.names, batch.columns):
        if pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        out[name] = column.to_numpy(zero_copy_only=False)
    return out


def pyarrow_side(files: list[str]) -> int:
    rows = 0
    for batch in ds.dataset(files, format="parquet").to_batches(columns=COLUMNS, batch_size=BATCH):
        rows += len(to_numpy(batch)["l_orderkey"])
    return rows


def tarn_scan(uri: str) -> int:
    rows = 0
    reader = pa.RecordBatchReader.from_stream(tarn.Table(uri).scan(columns=COLUMNS, batch_size=BATCH))
    for batch in reader:
        rows += len(to_numpy(batch)["l_orderkey"])
    return rows


def tarn_dataset(uri: str, shuffle: bool) -> int:
    dataset = TarnDataset(
        uri, columns=COLUMNS, batch_size=BATCH, output="numpy",
        shuffle=shuffle, shuffle_buffer=65536 if shuffle else 0,
    )
    return sum(len(batch["l_orderkey"]) for batch in dataset)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parquet", required=True, help="TPC-H lineitem as one Parquet file")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="where to write the figures")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as warehouse:
        conn = tarn.connect(warehouse)
        started = time.perf_counter()
        conn.sql(f"CREATE TABLE lineitem AS SELECT * FROM '{Path(args.parquet).resolve()}'").to_arrow()
        load = time.perf_counter() - started
        uri = str(Path(warehouse) / "default" / "lineitem")
        table = tarn.Table(uri)
        files = [str(Path(uri) / path) for path, _, _ in table.shards()]
        sides = {
            "pyarrow": lambda: pyarrow_side(files),
            "tarn scan": lambda: tarn_scan(uri),
            "tarn dataset": lambda: tarn_dataset(uri, False),
            "tarn dataset, shuffled": lambda: tarn_dataset(uri, True),
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        rows = None
        for run in range(args.runs + 1):
            for name, side in sides.items():
                started = time.perf_counter()
                n = side()
                elapsed = time.perf_counter() - started
                if rows is None:
                    rows = n
                if n != rows:
                    raise SystemExit(f"{name} read {n} rows, not {rows}")
                if run > 0:  # the first run warms caches
                    times[name].append(elapsed)

    base = statistics.median(times["pyarrow"])
    print(f"lineitem: {rows:,} rows in {len(files)} data files, loaded in {load:.2f} s; "
          f"median of {args.runs} runs\n")
    print("| reader | time (s) | rows/s | vs pyarrow |")
    print("|---|---:|---:|---:|")
    figures = {}
    for name, samples in times.items():
        median = statistics.median(samples)
        figures[name] = {"seconds": median, "rows_per_second": rows / median, "ratio": median / base}
        print(f"| {name} | {median:.3f} | {rows / median:,.0f} | {median / base:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "files": len(files), "sides": figures}, indent=2))


if __name__ == "__main__":
    main()
