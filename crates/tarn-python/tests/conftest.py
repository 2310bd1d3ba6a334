"""Fixtures: a warehouse in a temporary directory, with tables written through tarn."""

from __future__ import annotations

import os
import pathlib

import pytest

import tarn

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def warehouse(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "warehouse"


@pytest.fixture
def conn(warehouse: pathlib.Path) -> tarn.Connection:
    return tarn.connect(str(warehouse))


def run(conn: tarn.Connection, sql: str):
    """Runs `sql` and returns its rows as dicts."""
    return conn.sql(sql).to_arrow().to_pylist()


@pytest.fixture
def events(conn: tarn.Connection, warehouse: pathlib.Path) -> str:
    """`events`: 1,200 rows in 12 data files over 3 partitions, with awkward values; its
    location is returned."""
    run(
        conn,
        "CREATE TABLE events (id BIGINT NOT NULL, \"kind of\" VARCHAR, score DOUBLE, "
        "emb REAL[3]) PARTITIONED BY (\"kind of\")",
    )
    kinds = ["a b/c%", "ünï", ""]
    for i in range(4):
        values = ", ".join(
            f"({n}, '{kinds[n % 3]}', {'NULL' if n % 7 == 0 else n / 2}, "
            f"[{n}.0, {n + 1}.5, -{n}.25])"
            for n in range(i * 300, (i + 1) * 300)
        )
        run(conn, f"INSERT INTO events VALUES {values}")
    return str(warehouse / "default" / "events")


@pytest.fixture
def tarn_bin() -> str:
    """The `tarn` shell: $TARN_BIN, or the debug build in this repository."""
    path = os.environ.get("TARN_BIN") or str(REPO / "target" / "debug" / "tarn")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no tarn binary at {path}: build it (cargo build -p tarn-cli) or set TARN_BIN")
    return path
