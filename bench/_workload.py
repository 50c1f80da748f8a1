"""Benchmark tables and workloads: the narrow (4 columns) and wide (30 columns) shapes.

Backlog workloads are written server-side by one PL/pgSQL procedure, so writing
100,000 single-row transactions takes seconds, not minutes: chunks of at most
1,000 rows go round-robin over the tables, and the procedure commits whenever
``txn_rows`` changes have accumulated. The mix is Debezium-shaped: 60 %
inserts, 30 % updates (full new row, no old image) and 10 % deletes (key only).
Live workloads (latency, soak) are small inserts from the client, paced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Shape:
    name: str
    columns: str
    """Column definitions after ``id bigint PRIMARY KEY``."""
    insert_cols: str
    insert_vals: str
    """A SELECT list over ``g`` (the bigint id) matching ``insert_cols``."""
    update_set: str


NARROW = Shape(
    "narrow",
    "n int NOT NULL, s text, ts timestamptz DEFAULT now()",
    "id, n, s",
    "g, (g % 1000)::int, md5(g::text)",
    "n = n + 1",
)

_WIDE_COLUMNS = [  # (definition, value over g); with id, 30 columns of the common types
    ("c_int int", "(g % 100000)::int"),
    ("c_bigint bigint", "g * 1000003"),
    ("c_smallint smallint", "(g % 30000)::smallint"),
    ("c_text text", "md5(g::text)"),
    ("c_varchar varchar(64)", "'user_' || g"),
    ("c_char char(8)", "lpad((g % 1000)::text, 8, '0')"),
    ("c_numeric numeric(12,2)", "(g % 100000) / 100.0"),
    ("c_numeric_free numeric", "g * 3.14159"),
    ("c_float8 float8", "g * 0.5"),
    ("c_float4 real", "(g % 1000) * 0.25"),
    ("c_bool bool", "g % 2 = 0"),
    ("c_date date", "date '2024-01-01' + (g % 365)::int"),
    ("c_timestamp timestamp", "timestamp '2024-01-01' + g * interval '1 second'"),
    ("c_timestamptz timestamptz", "now()"),
    ("c_updated timestamptz", "now() - (g % 1000) * interval '1 minute'"),
    ("c_time time", "time '00:00' + (g % 86400) * interval '1 second'"),
    ("c_interval interval", "(g % 100) * interval '1 hour'"),
    ("c_uuid uuid", "md5(g::text)::uuid"),
    ("c_jsonb jsonb", "jsonb_build_object('k', g, 'tags', jsonb_build_array('a', 'b'))"),
    ("c_json json", "json_build_object('x', g % 10)"),
    ("c_bytea bytea", "decode(md5(g::text), 'hex')"),
    ("c_int_array int[]", "ARRAY[(g % 10)::int, 1, 2]"),
    ("c_text_array text[]", "ARRAY['x', g::text]"),
    ("c_status text", "(ARRAY['new', 'paid', 'shipped', 'done'])[(g % 4) + 1]"),
    ("c_email varchar(255)", "'user' || g || '@example.com'"),
    ("c_amount numeric(18,4)", "(g % 1000000) / 10000.0"),
    ("c_flag bool", "g % 3 = 0"),
    ("c_ratio float8", "1.0 / (g + 1)"),
    ("c_note text", "CASE WHEN g % 2 = 0 THEN NULL ELSE 'note ' || g END"),
]
WIDE = Shape(
    "wide",
    ", ".join(d for d, _ in _WIDE_COLUMNS),
    "id, " + ", ".join(d.split()[0] for d, _ in _WIDE_COLUMNS),
    "g, " + ", ".join(v for _, v in _WIDE_COLUMNS),
    "c_int = c_int + 1, c_updated = now()",
)
SHAPES = {s.name: s for s in (NARROW, WIDE)}

_LOAD_PROCEDURE = """
CREATE OR REPLACE PROCEDURE bench_load(tables text[], ins bigint, upd bigint, del bigint, txn_rows bigint,
                                       cols text, vals text, upd_set text)
LANGUAGE plpgsql AS $$
DECLARE
    n int := array_length(tables, 1);
    chunk bigint := least(txn_rows, 1000);
    top bigint[] := array_fill(0::bigint, ARRAY[n]);
    low bigint[] := array_fill(0::bigint, ARRAY[n]);
    pending bigint := 0;
    k bigint;
    t int;
    m bigint;
    phase int;
    todo bigint;
BEGIN
    FOR phase IN 1..3 LOOP
        todo := CASE phase WHEN 1 THEN ins WHEN 2 THEN upd ELSE del END;
        k := 0;
        WHILE todo > 0 LOOP
            t := (k % n) + 1;
            m := least(chunk, todo, txn_rows - pending);
            IF phase = 1 THEN
                EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM generate_series($1::bigint, $2::bigint) g',
                               tables[t], cols, vals) USING top[t] + 1, top[t] + m;
                top[t] := top[t] + m;
            ELSIF phase = 2 THEN
                EXECUTE format('UPDATE %I SET %s WHERE id BETWEEN $1 AND $2', tables[t], upd_set)
                    USING low[t] + 1, low[t] + m;
                low[t] := low[t] + m;
            ELSE
                EXECUTE format('DELETE FROM %I WHERE id BETWEEN $1 AND $2', tables[t]) USING top[t] - m + 1, top[t];
                top[t] := top[t] - m;
            END IF;
            todo := todo - m;
            pending := pending + m;
            k := k + 1;
            IF pending >= txn_rows THEN
                COMMIT;
                pending := 0;
            END IF;
        END LOOP;
    END LOOP;
    COMMIT;
END $$
"""


def table_names(shape: Shape, ntables: int) -> list[str]:
    return [shape.name] if ntables == 1 else [f"{shape.name}_{i:04d}" for i in range(ntables)]


def create_tables(conn: psycopg.Connection[Any], shape: Shape, names: list[str]) -> None:
    with conn.transaction():
        for name in names:
            conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, " + shape.columns + ")")
                         .format(sql.Identifier(name)))


def install(conn: psycopg.Connection[Any]) -> None:
    conn.execute(_LOAD_PROCEDURE)


def load(conn: psycopg.Connection[Any], shape: Shape, names: list[str], rows: int, txn_rows: int) -> int:
    """Write ``rows`` changes in transactions of ``txn_rows``; returns the change count.

    Asynchronous commit makes writing fast; the caller waits for the WAL flush
    (logical decoding only reads flushed WAL) through ``wal_end``.
    """
    inserts, updates = int(rows * 0.6), int(rows * 0.3)
    deletes = rows - inserts - updates
    conn.execute("SET synchronous_commit = off")
    conn.execute("CALL bench_load(%s, %s, %s, %s, %s, %s, %s, %s)",
                 (names, inserts, updates, deletes, txn_rows, shape.insert_cols, shape.insert_vals,
                  shape.update_set))
    conn.execute("SET synchronous_commit = on")
    return rows


def wal_end(conn: psycopg.Connection[Any]) -> int:
    """The current WAL insert position, once it is flushed (logical decoding sends only flushed WAL).

    Asynchronous commits are flushed by the WAL writer within ``wal_writer_delay``.
    """
    end = int(conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])  # type: ignore[index]
    deadline = time.monotonic() + 30
    while int(conn.execute("SELECT pg_current_wal_flush_lsn() - '0/0'").fetchone()[0]) < end:  # type: ignore[index]
        if time.monotonic() > deadline:
            raise RuntimeError("the WAL was not flushed within 30 s")
        time.sleep(0.01)
    return end


def touch(conn: psycopg.Connection[Any], shape: Shape, names: list[str]) -> None:
    """One transaction with one row (id 0) in every table: cdcd's per-table set-up happens here."""
    with conn.transaction():
        for name in names:
            insert_live(conn, shape, name, 0, 1)


def insert_live(conn: psycopg.Connection[Any], shape: Shape, table: str, first_id: int, count: int) -> None:
    """One transaction of ``count`` rows (ids from ``first_id``), committed synchronously."""
    conn.execute(
        sql.SQL("INSERT INTO {} (" + shape.insert_cols + ") SELECT " + shape.insert_vals.replace("%", "%%")
                + " FROM generate_series(%s::bigint, %s::bigint) g").format(sql.Identifier(table)),
        (first_id, first_id + count - 1))
