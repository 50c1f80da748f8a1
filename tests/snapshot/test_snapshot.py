"""The initial snapshot (cdcd.snapshot) against a real PostgreSQL.

The central property: with the slot's exported snapshot, snapshot ∪ stream
holds every change exactly once (no gap, no overlap), and a snapshot value is
the very string pgoutput sends for it.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from cdcd.debezium.envelope import EnvelopeOptions, TableEncoder
from cdcd.decode.messages import Delete, Insert, Message, Relation, Update
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.errors import SourceError
from cdcd.snapshot import (
    SnapshotReader,
    SnapshotRow,
    create_slot_with_snapshot,
    flag_rows,
    relation_for,
    tables_to_snapshot,
)
from cdcd.snapshot._tables import TablePart, plan_tables, split_tables
from cdcd.source.catalog import Catalog
from cdcd.wire.replication import ReplicationConnection
from tests.waiting import wait_until

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE a_empty (id int PRIMARY KEY);
CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), created timestamptz, blob bytea,
                    flag bool, addr inet, code char(5), day date, span interval, ratio float8, doc jsonb,
                    tags text[], feeling mood, uid uuid, gone int);
ALTER TABLE items DROP COLUMN gone;
ALTER TABLE items ADD COLUMN doubled int GENERATED ALWAYS AS (id * 2) STORED;
CREATE TABLE lines (order_id int, line_no int, note text, PRIMARY KEY (order_id, line_no));
CREATE TABLE full_ident (a int, b text);
ALTER TABLE full_ident REPLICA IDENTITY FULL;
CREATE TABLE by_index (a int NOT NULL, b int NOT NULL, c text);
CREATE UNIQUE INDEX by_index_b ON by_index (b);
ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_b;
CREATE PUBLICATION cdcd FOR ALL TABLES;
"""
ITEMS = """
INSERT INTO items VALUES
 (1, 'café ☃', 12.50, '2024-02-29 13:14:15.123456+02', '\\x00ff10', true, '10.0.0.1', 'ab', '2024-01-02',
  '1 year 2 mons 3 days 04:05:06.5', 0.1, '{"b": [1, 2.50], "a": null}', '{x,"y z",NULL}', 'happy',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '', 'NaN', 'infinity', '\\x', false, '2001:db8::/32', 'abcde', '-infinity', '-1 days', 'NaN', '[]', '{}', 'sad',
  '00000000-0000-0000-0000-000000000000');
INSERT INTO lines VALUES (1, 1, 'one'), (1, 2, 'two'), (2, 1, NULL);
INSERT INTO full_ident VALUES (1, 'x'), (1, 'x');
INSERT INTO by_index VALUES (1, 10, 'c');
"""
ALL = ["public.a_empty", "public.big", "public.by_index", "public.full_ident", "public.items", "public.lines"]
BIG = 50_000


def setup_db(db: Any, *, big: int = BIG) -> None:
    db.execute(SCHEMA)
    db.execute(ITEMS)
    db.execute(f"INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, {big}) g; ANALYZE big")


def peek(db: Any, slot: str, publication: str = "cdcd") -> list[Message]:
    """What the slot would stream now, decoded (the slot does not advance)."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, "
            "'proto_version', '1', 'publication_names', %s)", (slot, publication)).fetchall()
    decoder = PgOutputDecoder()
    return [decoder.decode(bytes(r[0])) for r in rows]


def by_table(rows: list[SnapshotRow]) -> dict[str, list[SnapshotRow]]:
    out: dict[str, list[SnapshotRow]] = defaultdict(list)
    for row in rows:
        out[row.table.qualified_name].append(row)
    return out


def changes(messages: list[Message]) -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    for m in messages:
        if isinstance(m, Insert):
            out.append(("c", m.relation.name, m.new))
        elif isinstance(m, Update):
            out.append(("u", m.relation.name, m.new))
        elif isinstance(m, Delete):
            out.append(("d", m.relation.name, m.old))
    return out


# -- markers (no database) -------------------------------------------------------------------


@pytest.mark.parametrize(("sizes", "expected"), [
    ([1], ["last"]),
    ([2], ["first", "last"]),
    ([3], ["first", "true", "last"]),
    ([2, 2], ["first", "last_in_data_collection", "first_in_data_collection", "last"]),
    ([1, 1, 1], ["first", "last_in_data_collection", "last"]),  # last_in beats first_in
    ([2, 3, 0], ["first", "last_in_data_collection", "first_in_data_collection", "true", "last"]),
    ([0, 2, 1], ["first_in_data_collection", "last_in_data_collection", "last"]),  # empty first table: no "first"
    ([0, 0], []),
    ([], []),
])
def test_markers_follow_debezium(sizes: list[int], expected: list[str]) -> None:
    tables = [(i, range(n)) for i, n in enumerate(sizes)]
    assert [flag for _, _, flag in flag_rows(tables, len(tables))] == expected


def test_markers_are_lazy_per_table() -> None:
    asked: list[int] = []

    def tables() -> Any:
        for i in range(3):
            asked.append(i)
            yield i, iter([f"{i}a", f"{i}b"])

    out = flag_rows(tables(), 3)
    assert next(out) == (0, "0a", "first")
    assert asked == [0]  # one row of look-ahead, not one table


# -- against PostgreSQL ----------------------------------------------------------------------


def test_exported_snapshot_and_slot_give_every_change_once(pg_db: Any) -> None:
    setup_db(pg_db)
    # A transaction in flight while the slot is created: PostgreSQL waits for it to end.
    with pg_db.connect() as in_flight:
        in_flight.execute("BEGIN")
        in_flight.execute("INSERT INTO lines VALUES (9, 9, 'in flight')")
        repl = ReplicationConnection(pg_db.dsn)
        created: list[tuple[int, str]] = []
        creator = threading.Thread(target=lambda: created.append(create_slot_with_snapshot(repl, "snap")))
        creator.start()
        # PostgreSQL makes the slot wait for the open transaction: a lock wait on its transaction id.
        wait_until(lambda: pg_db.execute("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                         "AND locktype = 'transactionid'") == [(1,)], "the slot waiting")
        assert created == []  # still waiting for the open transaction
        in_flight.execute("COMMIT")
        creator.join(10)
    ((point, name),) = created

    # Committed after the slot's consistent point but before the readers import the snapshot:
    pg_db.execute("INSERT INTO lines VALUES (3, 1, 'after')")
    pg_db.execute("UPDATE lines SET note = 'changed' WHERE order_id = 1 AND line_no = 1")
    pg_db.execute("DELETE FROM lines WHERE order_id = 2")
    reader = SnapshotReader(pg_db.dsn, name, point, ALL, degree=2, fetch_size=1000)
    with reader:
        repl.close()  # imported: the exporting walsender is no longer needed
        pg_db.execute("INSERT INTO big VALUES (50001, 'after'); UPDATE big SET v = 'changed' WHERE id = 7")
        rows = list(reader)
    tables = by_table(rows)

    # The snapshot: everything committed before the consistent point, nothing after.
    assert sorted(r.values for r in tables["public.lines"]) == [
        ("1", "1", "one"), ("1", "2", "two"), ("2", "1", None), ("9", "9", "in flight")]
    big = {r.values[0]: r.values[1] for r in tables["public.big"]}
    assert len(tables["public.big"]) == len(big) == BIG
    assert "50001" not in big and big["7"] == "8f14e45fceea167a5a36dedd4bea2543"
    # The stream: exactly the changes after it.
    assert changes(peek(pg_db, "snap")) == [
        ("c", "lines", ("3", "1", "after")),
        ("u", "lines", ("1", "1", "changed")),
        ("d", "lines", ("2", "1", None)),
        ("c", "big", ("50001", "after")),
        ("u", "big", ("7", "changed")),
    ]

    # Snapshot events carry the consistent point and the snapshot transaction (Debezium's 'r' events).
    assert reader.lsn == point and reader.txid is not None and reader.ts_us > 0
    first = tables["public.big"][0]
    encoder = TableEncoder(first.table, EnvelopeOptions("snap", pg_db.dbname, "3.6.3.Final"))
    (record,) = encoder.create(first.values, reader.source(first), None, op="r")
    payload = orjson.loads(record.value or b"")["payload"]
    assert payload["op"] == "r" and payload["transaction"] is None and payload["before"] is None
    source = payload["source"]
    assert source["snapshot"] == first.snapshot_flag == "first_in_data_collection"  # a_empty is first
    assert (source["lsn"], source["sequence"]) == (point, f'[null,"{point}"]')
    assert source["txId"] == reader.txid and source["ts_ms"] == reader.ts_us // 1000


def test_parallel_read_every_row_once_each_table_in_order_memory_bounded(pg_db: Any) -> None:
    setup_db(pg_db)
    progress: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    reader = SnapshotReader(pg_db.dsn, None, None, ALL, degree=2, fetch_size=1000, queue_chunks=2,
                            on_progress=lambda t, done, est: progress[t].append((done, est)))
    with reader:
        it = iter(reader)
        rows = [next(it)]
        # A stalled consumer: the worker on `big` fills both chunks it may hold, then waits.
        wait_until(lambda: reader.peak_buffered_rows >= 2000, "a worker filling its two chunks")
        rows += list(it)

    assert reader.buffer_limit_rows == 4000
    assert 2000 <= reader.peak_buffered_rows <= reader.buffer_limit_rows
    ids = Counter(r.values[0] for r in rows if r.table.name == "big")
    assert len(ids) == BIG and set(ids.values()) == {1}
    assert_parts_in_heap_order(pg_db, reader, "public.big", [int(r.values[0]) for r in rows if r.table.name == "big"])

    flags = [r.snapshot_flag for r in rows]
    tables = by_table(rows)
    # a_empty (first in order) is empty: as in Debezium, no row is "first".
    big_flags = [r.snapshot_flag for r in tables["public.big"]]
    assert big_flags[0] == "first_in_data_collection" and big_flags[-1] == "last_in_data_collection"
    assert set(big_flags[1:-1]) == {"true"}
    assert [r.snapshot_flag for r in tables["public.by_index"]] == ["last_in_data_collection"]
    assert rows[-1].table.name == "lines" and flags[-1] == "last"  # the last table's last row comes last
    assert Counter(flags) == {"true": len(rows) - 9, "first_in_data_collection": 4, "last_in_data_collection": 4,
                              "last": 1}

    assert progress["public.a_empty"] == [(0, None)]
    big_progress = progress["public.big"]
    # big is read in two block ranges, one per worker: one more (shorter) chunk where they meet
    assert [p.number for p in reader.parts if reader.plans[p.table].name == "public.big"] == [0, 1]
    assert big_progress[0][0] == 0 and big_progress[-1][0] == BIG
    assert BIG // 1000 + 1 <= len(big_progress) <= BIG // 1000 + 2
    assert [d for d, _ in big_progress] == sorted(d for d, _ in big_progress)
    assert big_progress[0][1] is not None and abs(big_progress[0][1] - BIG) < BIG // 10  # reltuples
    assert progress["public.lines"][-1][0] == 3


def test_values_and_relations_are_what_pgoutput_sends(pg_db: Any) -> None:
    pg_db.execute(SCHEMA)
    pg_db.execute("SELECT pg_create_logical_replication_slot('cmp', 'pgoutput')")
    pg_db.execute(ITEMS)  # decoded from 'cmp' and read by the snapshot: must be equal
    tables = ["public.items", "public.lines", "public.full_ident", "public.by_index"]
    with SnapshotReader(pg_db.dsn, None, None, tables, degree=2, fetch_size=2) as reader:
        pg_db.execute("INSERT INTO lines VALUES (7, 7, 'later')")  # after the fresh snapshot: not in it
        rows = list(reader)
    assert reader.lsn > 0 and reader.txid is not None

    streamed = peek(pg_db, "cmp")
    inserted: dict[str, list[Any]] = defaultdict(list)
    for m in streamed:
        if isinstance(m, Insert):
            inserted[m.relation.name].append(m.new)
    inserted["lines"].remove(("7", "7", "later"))
    snap = by_table(rows)
    # items' stored generated column (doubled = id * 2): pgoutput leaves it out, the snapshot reads it
    # last, as Debezium's does; otherwise the values are pgoutput's
    assert [r.values[-1] for r in snap["public.items"]] == ["2", "4", "6"]
    assert [c.name for c in snap["public.items"][0].table.columns][-1] == "doubled"
    for table in tables:
        got = [r.values[:-1] if table == "public.items" else r.values for r in snap[table]]
        assert got == inserted[table.split(".")[1]], table
    assert snap["public.items"][0].values[1] == "café ☃" and snap["public.items"][2].values[7] == "abcde"

    relations = {m.name: m for m in streamed if isinstance(m, Relation)}
    with pg_db.connect() as conn:
        catalog = Catalog(conn)
        for table in tables:
            mine = relation_for(conn, "public", table.split(".")[1])
            assert mine == relations[mine.name], table
            assert catalog.table_info(relation_for(conn, "public", table.split(".")[1], generated=True)) \
                == snap[table][0].table
    assert [c.is_key for c in relations["by_index"].columns] == [False, True, False]
    assert [c.is_key for c in relations["full_ident"].columns] == [True, True]
    assert [c.name for c in relations["items"].columns][-1] == "uid"  # not dropped, not generated


def test_publication_tables_column_list_and_row_filter(pg_db: Any) -> None:
    pg_db.execute(SCHEMA)
    pg_db.execute(ITEMS)
    pg_db.execute("CREATE PUBLICATION part FOR TABLE lines (order_id, line_no) WHERE (order_id > 1), items")
    with pg_db.connect() as conn:
        assert tables_to_snapshot(conn, "part", lambda name: True) == ["public.items", "public.lines"]
        assert tables_to_snapshot(conn, "part", lambda name: name != "public.items") == ["public.lines"]
        with pytest.raises(SourceError, match="does not exist"):
            tables_to_snapshot(conn, "nope", lambda name: True)

    pg_db.execute("SELECT pg_create_logical_replication_slot('part', 'pgoutput')")
    with SnapshotReader(pg_db.dsn, None, None, ["public.lines"], publication="part") as reader:
        rows = list(reader)
    assert [r.values for r in rows] == [("2", "1")]
    assert [c.name for c in rows[0].table.columns] == ["order_id", "line_no"]
    pg_db.execute("INSERT INTO lines VALUES (5, 5, 'x')")
    (relation,) = [m for m in peek(pg_db, "part", "part") if isinstance(m, Relation)]
    with pg_db.connect() as conn:
        assert relation_for(conn, "public", "lines", publication="part") == relation


def test_exported_snapshot_dies_with_the_next_replication_command(pg_db: Any) -> None:
    pg_db.execute(SCHEMA)
    repl = ReplicationConnection(pg_db.dsn)
    try:
        point, name = create_slot_with_snapshot(repl, "gone")
        repl.identify_system()  # any command ends the exported snapshot
        with pytest.raises(SourceError, match="exported snapshot is gone"):
            SnapshotReader(pg_db.dsn, name, point, ["public.lines"]).open()
    finally:
        repl.close()
    with pytest.raises(SourceError, match="does not exist in the snapshot"):
        SnapshotReader(pg_db.dsn, None, None, ["public.nope"]).open()


def test_closing_early_stops_the_workers(pg_db: Any) -> None:
    setup_db(pg_db, big=20_000)
    reader = SnapshotReader(pg_db.dsn, None, None, ["public.big", "public.items"], degree=2, fetch_size=100)
    with reader:
        it = iter(reader)
        head = [next(it) for _ in range(10)]
        threads = list(reader._threads)
    assert not any(t.is_alive() for t in threads), "leaving the reader stops and joins its workers"
    big = [r.values[0] for r in head if r.table.name == "big"]
    assert head[0].table.name == "big" and len(set(big)) == len(big)  # the first table first
    with pg_db.connect() as conn:  # the snapshot transactions are gone
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cdcd-snapshot'"
                            ).fetchone()[0] == 0


def test_a_failing_worker_fails_the_consumer_promptly(pg_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_db(pg_db, big=20_000)
    import cdcd.snapshot._reader as reader_module

    def broken(conn: Any, schema: str, table: str, **kw: Any) -> Relation:
        if table == "items":
            raise SourceError("boom")
        return relation_for(conn, schema, table, **kw)

    monkeypatch.setattr(reader_module, "relation_for", broken)
    reader = SnapshotReader(pg_db.dsn, None, None, ["public.big", "public.items"], degree=2, fetch_size=100)
    seen = 0
    threads: list[threading.Thread] = []
    close = reader.close

    def closing() -> None:  # the workers as they were when the failure arrived
        threads.extend(t for t in reader._threads if t not in threads)
        close()

    reader.close = closing  # type: ignore[method-assign]
    with pytest.raises(SourceError, match="boom"), reader:
        for _ in reader:
            seen += 1
    assert seen < 20_000  # failed fast, while the first table was still being read
    assert len(threads) == 2 and not any(t.is_alive() for t in threads)


def test_tables_are_split_into_block_ranges_only_where_that_is_exact(pg_db: Any) -> None:
    setup_db(pg_db)
    pg_db.execute("CREATE TABLE parent (id int); CREATE TABLE child () INHERITS (parent); "
                  "INSERT INTO parent SELECT g FROM generate_series(1, 60000) g; "
                  "CREATE TABLE ranged (id int) PARTITION BY RANGE (id); "
                  "CREATE TABLE ranged_1 PARTITION OF ranged FOR VALUES FROM (0) TO (1000000); "
                  "INSERT INTO ranged SELECT g FROM generate_series(1, 60000) g")
    names = ["public.big", "public.items", "public.parent", "public.ranged", "public.ranged_1"]
    with pg_db.connect() as conn:
        plans = plan_tables(conn, names, None)
        assert [(p.table, p.number, p.last) for p in split_tables(conn, plans, 1)] == [
            (i, 0, True) for i in range(5)]
        parts = split_tables(conn, plans, 3)
        blocks = conn.execute("SELECT pg_relation_size('big') / 8192").fetchone()[0]
    # big and the leaf partition in three block ranges; items is small; an inheritance parent and a
    # partitioned table have their rows in other heaps: whole
    split: dict[str, list[TablePart]] = defaultdict(list)
    for part in parts:
        split[names[part.table]].append(part)
    assert [len(split[n]) for n in names] == [3, 1, 1, 1, 3]
    big = split["public.big"]
    assert [p.blocks for p in big] == [(None, blocks // 3), (blocks // 3, 2 * blocks // 3), (2 * blocks // 3, None)]
    assert [p.last for p in big] == [False, False, True]

    # The parts' rows, in part order, are the table's rows once each, in heap order.
    reader = SnapshotReader(pg_db.dsn, None, None, names, degree=3, fetch_size=777)
    with reader:
        rows = list(reader)
    tables = by_table(rows)
    for name in names:
        assert_parts_in_heap_order(pg_db, reader, name, [int(r.values[0]) for r in tables[name]])
    assert len(tables["public.parent"]) == 60000 and rows[-1].snapshot_flag == "last"


def assert_parts_in_heap_order(pg_db: Any, reader: SnapshotReader, table: str, ids: list[int]) -> None:
    """Every row once; the rows of each of the table's parts (block ranges) in heap order."""
    with pg_db.connect() as conn:
        heap = conn.execute(f"SELECT id, (ctid::text::point)[0]::int8 FROM {table}").fetchall()
    assert heap and sorted(ids) == sorted(i for i, _ in heap), table
    index = next(i for i, p in enumerate(reader.plans) if p.name == table)
    for part in (p for p in reader.parts if p.table == index):
        first, end = part.blocks
        inside = {i for i, b in heap if (first is None or b >= first) and (end is None or b < end)}
        assert [i for i in ids if i in inside] == [i for i, _ in heap if i in inside], (table, part)
