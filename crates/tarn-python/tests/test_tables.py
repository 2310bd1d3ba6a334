"""tarn.Table and tarn.connect: Arrow streams, datafusion-python, errors."""

from __future__ import annotations

import json
import math
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import datafusion
import pyarrow as pa
import pytest

import tarn
from conftest import run


def test_sql_returns_arrow_for_ddl_dml_and_queries(conn):
    assert conn.sql("CREATE TABLE t (id BIGINT, v DOUBLE)").to_arrow().num_columns == 0
    inserted = run(conn, "INSERT INTO t VALUES (1, 1.5), (2, 'NaN'), (3, NULL)")
    assert inserted == [{"count": 3}]
    rows = run(conn, "SELECT id, v FROM t ORDER BY id")
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[0]["v"] == 1.5 and math.isnan(rows[1]["v"]) and rows[2]["v"] is None
    # Several statements: the last one's result.
    assert run(conn, "DELETE FROM t WHERE id = 1; SELECT count(*) AS n FROM t") == [{"n": 2}]
    snapshots = run(conn, 'SELECT operation FROM "t$snapshots" ORDER BY version')
    assert [s["operation"] for s in snapshots] == ["create", "append", "delete"]


def test_from_stream_returns_every_row_in_many_batches(conn, events):
    stream = conn.sql("SELECT id FROM events")
    reader = pa.RecordBatchReader.from_stream(stream)
    ids = []
    batches = 0
    for batch in reader:
        ids.extend(batch.column(0).to_pylist())
        batches += 1
    assert batches > 1
    assert sorted(ids) == list(range(1200))
    # A stream is read once.
    with pytest.raises(tarn.TarnError, match="read already"):
        pa.RecordBatchReader.from_stream(stream)


def test_duckdb_and_polars_read_the_streams_directly(conn, events):
    import duckdb
    import polars

    # Through the Arrow PyCapsule stream interface: no pyarrow in between.
    scan = tarn.Table(events).scan(columns=["id", "kind of"], filter="id < 600")
    counted = duckdb.sql('SELECT "kind of" AS kind, count(*) AS n FROM scan GROUP BY kind ORDER BY kind')
    assert counted.fetchall() == [("", 200), ("a b/c%", 200), ("ünï", 200)]
    frame = polars.DataFrame(conn.sql("SELECT id, score FROM events WHERE id % 7 = 0"))
    assert frame.height == 172 and frame["score"].null_count() == 172
    assert sorted(frame["id"].to_list()) == list(range(0, 1200, 7))


def test_table_scans_with_projection_and_filter(events):
    table = tarn.Table(events)
    assert table.version == 4
    schema = pa.schema(table)
    assert schema.names == ["id", "kind of", "score", "emb"]
    # Strings reach Python as plain strings, which every consumer reads.
    assert schema.field("kind of").type == pa.string()
    assert pa.table(table).num_rows == 1200
    picked = table.to_arrow(columns=["id", "kind of"], filter="\"kind of\" = 'ünï' AND id < 30")
    assert picked.column_names == ["id", "kind of"]
    assert sorted(picked.column("id").to_pylist()) == [n for n in range(30) if n % 3 == 1]
    assert table.to_arrow(filter="id < 0").num_rows == 0
    embedding = table.to_arrow(columns=["emb"], filter="id = 2").column("emb").to_pylist()
    assert embedding == [[2.0, 3.5, -2.25]]


def test_a_pinned_table_does_not_see_later_commits(conn, events):
    pinned = tarn.Table(events)
    run(conn, "DELETE FROM events WHERE id < 600")
    assert pa.table(pinned).num_rows == 1200
    assert pa.table(tarn.Table(events)).num_rows == 600
    assert pa.table(tarn.Table(events, version=pinned.version)).num_rows == 1200
    # Pickled, it opens the same version.
    copy = pickle.loads(pickle.dumps(pinned))
    assert (copy.uri, copy.version) == (pinned.uri, pinned.version)
    assert pa.table(copy).num_rows == 1200


def test_errors_say_what_is_wrong(conn, events, tmp_path):
    with pytest.raises(tarn.TarnError, match="version 99"):
        tarn.Table(events, version=99)
    with pytest.raises(tarn.TarnError):
        tarn.Table(str(tmp_path / "nothing-here"))
    with pytest.raises(tarn.TarnError, match="No field named nope. Valid fields are events.id, "):
        tarn.Table(events).to_arrow(filter="nope > 1")
    with pytest.raises(tarn.TarnError, match="^syntax error: Expected: an expression"):
        tarn.Table(events).to_arrow(filter="id >")
    with pytest.raises(
        tarn.TarnError, match="^table events has no column 'nope'; its columns are id, kind of, score, emb$"
    ):
        tarn.Table(events).scan(columns=["id", "nope"])
    with pytest.raises(tarn.TarnError, match="missing"):
        run(conn, "SELECT * FROM missing")
    with pytest.raises(tarn.TarnError, match="no SQL statement"):
        run(conn, "  ")


def test_an_empty_table_scans_to_its_schema(conn, warehouse):
    run(conn, "CREATE TABLE empty (id BIGINT, name VARCHAR)")
    table = tarn.Table(str(warehouse / "default" / "empty"))
    result = pa.table(table)
    assert result.num_rows == 0 and result.column_names == ["id", "name"]
    assert table.shards() == []


def test_datafusion_select_equals_the_shell(conn, events, warehouse, tarn_bin):
    ctx = datafusion.SessionContext()
    ctx.register_table("events", tarn.Table(events))
    query = (
        "SELECT \"kind of\" AS kind, count(*) AS n, sum(score) AS total FROM events "
        "WHERE id BETWEEN 100 AND 900 AND score IS NOT NULL GROUP BY \"kind of\" ORDER BY kind"
    )
    ours = ctx.sql(query).to_arrow_table().to_pylist()
    shell = subprocess.run(
        [tarn_bin, "--warehouse", str(warehouse), "--format", "ndjson", "--quiet", "-c", query],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    theirs = [json.loads(line) for line in shell.splitlines()]
    assert len(ours) == 3
    assert ours == theirs


def test_datafusion_pushes_filters_into_the_scan(events):
    ctx = datafusion.SessionContext()
    ctx.register_table("events", tarn.Table(events))
    plan = ctx.sql("EXPLAIN SELECT id FROM events WHERE id = 5").to_arrow_table().to_pylist()
    logical = next(p["plan"] for p in plan if p["plan_type"] == "logical_plan")
    physical = next(p["plan"] for p in plan if p["plan_type"] == "physical_plan")
    assert "partial_filters=[events.id = Int64(5)]" in logical
    # The scan runs under the table's own runtime, where its object store is.
    assert "TarnOwnRuntimeExec" in physical and "DataSourceExec" in physical


def test_datafusion_insert_commits_one_snapshot(conn, events):
    ctx = datafusion.SessionContext()
    ctx.register_table("events", tarn.Table(events))
    before = run(conn, 'SELECT max(version) AS v FROM "events$snapshots"')[0]["v"]
    ctx.sql(
        "INSERT INTO events SELECT id + 10000, \"kind of\", score, emb FROM events WHERE id < 10"
    ).collect()
    snapshots = run(conn, 'SELECT version, operation FROM "events$snapshots" ORDER BY version')
    assert snapshots[-1] == {"version": before + 1, "operation": "append"}
    # The unpinned table sees its own insert; time travel sees the table before it.
    assert ctx.sql("SELECT count(*) AS n FROM events").to_arrow_table().to_pylist() == [{"n": 1210}]
    assert pa.table(tarn.Table(events, version=before)).num_rows == 1200


def test_a_pinned_table_is_read_only_in_datafusion(events):
    ctx = datafusion.SessionContext()
    ctx.register_table("events", tarn.Table(events, version=2))
    assert ctx.sql("SELECT count(*) AS n FROM events").to_arrow_table().to_pylist() == [{"n": 600}]
    with pytest.raises(Exception, match="read-only"):
        ctx.sql("INSERT INTO events SELECT * FROM events").collect()


def test_another_datafusion_major_version_is_a_clear_error(events, monkeypatch):
    monkeypatch.setattr(datafusion, "__version__", "54.1.0")
    ctx = datafusion.SessionContext()
    with pytest.raises(Exception, match="need datafusion 55.x in Python, found 54.1.0"):
        ctx.register_table("events", tarn.Table(events))


def test_a_schema_change_after_registering_is_a_clear_error(conn, events):
    ctx = datafusion.SessionContext()
    ctx.register_table("events", tarn.Table(events))
    run(conn, "ALTER TABLE events ADD COLUMN extra INT")
    with pytest.raises(Exception, match="changed after it was registered"):
        ctx.sql("SELECT count(*) FROM events").collect()
    ctx.deregister_table("events")
    ctx.register_table("events", tarn.Table(events))
    assert ctx.sql("SELECT count(extra) AS n FROM events").to_arrow_table().to_pylist() == [{"n": 0}]


def test_ctrl_c_stops_a_running_statement_and_commits_nothing(conn, warehouse):
    run(conn, "CREATE TABLE t (id BIGINT)")
    script = textwrap.dedent(
        f"""
        import tarn
        conn = tarn.connect({str(warehouse)!r})
        print("running", flush=True)
        try:
            conn.sql("INSERT INTO t SELECT value FROM generate_series(1, 100000000000)")
            print("finished", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        print(conn.sql("SELECT count(*) AS n FROM t").to_arrow().to_pylist(), flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "running\n"
    time.sleep(1.5)
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out == "interrupted\n[{'n': 0}]\n"
    snapshots = run(conn, 'SELECT operation FROM "t$snapshots"')
    assert [s["operation"] for s in snapshots] == ["create"]
