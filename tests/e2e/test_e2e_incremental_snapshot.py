"""Incremental (ad hoc) snapshots through Debezium's signal table, against a real PostgreSQL.

The property that matters: with writers busy during the snapshot, replaying
the topic (r/c/u set the row, d removes it) gives exactly the table's final
contents, and no key ever goes back to an older version. Snapshot rows and
streamed changes never conflict.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from typing import Any

import orjson
import pytest

from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import MockKafka, Record, consume_all
from tests.waiting import wait_until

pytestmark = [pytest.mark.pg, pytest.mark.kafka]

SIGNAL_TABLE = ("CREATE TABLE dbz_signal (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, "
                "data varchar(2048) NULL)")


def start(procs: list[CdcdProcess], pg_db: Any, bootstrap: str, prefix: str,
          env: dict[str, str] | None = None) -> CdcdProcess:
    full_env = {"CDCD_SNAPSHOT_MODE": "no_data", "CDCD_SIGNAL_DATA_COLLECTION": "public.dbz_signal",
                "CDCD_INCREMENTAL_SNAPSHOT_CHUNK_SIZE": "100", **(env or {})}
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", bootstrap, "--topic-prefix", prefix],
                       env=full_env)
    procs.append(proc)
    proc.wait_for("streaming", timeout=60)
    return proc


def signal(pg_db: Any, kind: str, data: dict[str, Any] | None = None) -> str:
    sid = f"sig-{uuid.uuid4().hex[:12]}"
    pg_db.execute("INSERT INTO dbz_signal VALUES (%s, %s, %s)",
                  (sid, kind, orjson.dumps(data).decode() if data is not None else None))
    return sid


def replay(records: list[Record]) -> tuple[dict[int, int], list[str]]:
    """Apply the topic in order: id → version; and every regression seen (a key going back in time)."""
    state: dict[int, int] = {}
    newest: dict[int, int] = {}
    regressions: list[str] = []
    for record in records:
        doc = record.json()
        if doc is None:
            continue  # tombstone
        payload = doc["payload"]
        if payload["op"] == "d":
            key = payload["before"]["id"]
            state.pop(key, None)
            continue
        after = payload["after"]
        key, version = after["id"], after["v"]
        if version < newest.get(key, -1):
            regressions.append(f"id {key}: {payload['op']} v{version} after v{newest[key]}")
        newest[key] = max(version, newest.get(key, -1))
        state[key] = version
    return state, regressions


def shown_aborted_gap(killed: CdcdProcess, resumed_key: list[Any]) -> tuple[int, int] | None:
    """(last key the killed instance committed, key resumed from) when the resume point was never committed.

    The embedded broker shows an aborted transaction's records, offsets record included,
    so the next instance may resume from the incremental position of the killed one's
    open transaction, past chunk rows that transaction never got to send. A real broker
    hides that record and this never applies.
    """
    committed = [int(e["incremental_last_key"][0]) for e in killed.logs()
                 if e.get("event") == "batch_committed" and e.get("incremental_last_key")]
    resumed = int(resumed_key[0])
    if resumed in committed:
        return None
    return max(committed, default=0), resumed


def table_state(pg_db: Any, table: str = "orders") -> dict[int, int]:
    with pg_db.connect() as conn:
        return {int(i): int(v) for i, v in conn.execute(f"SELECT id, v FROM {table}").fetchall()}


def consume_through_marker(pg_db: Any, bootstrap: str, topic: str, timeout: float = 90) -> list[Record]:
    """Everything on ``topic`` up to a marker row written now (id -1): all that came before is in Kafka."""
    pg_db.execute("INSERT INTO orders VALUES (-1, 0, 'end marker')")
    deadline = time.monotonic() + timeout
    while True:
        records = consume_all(bootstrap, topic, timeout=30, settle=0.5)
        if any(r.value and (r.json()["payload"]["after"] or {}).get("id") == -1 for r in records):
            return records
        assert time.monotonic() < deadline, f"the marker never reached {topic} ({len(records)} records)"
        time.sleep(0.5)


class Writers:
    """Updates, inserts and deletes on ``orders`` while the snapshot runs (each key's v only grows)."""

    def __init__(self, pg_db: Any, rows: int) -> None:
        self.pg_db = pg_db
        self.rows = rows
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.count = 0

    def __enter__(self) -> Writers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        rng = random.Random(7)
        next_id = self.rows + 1
        with self.pg_db.connect() as conn:
            while not self.stop.is_set():
                with conn.transaction():
                    for _ in range(3):
                        kind = rng.random()
                        if kind < 0.7:
                            conn.execute("UPDATE orders SET v = v + 1 WHERE id = %s", (rng.randint(1, next_id),))
                        elif kind < 0.85:
                            conn.execute("INSERT INTO orders VALUES (%s, 0, 'new')", (next_id,))
                            next_id += 1
                        else:
                            conn.execute("DELETE FROM orders WHERE id = %s", (rng.randint(1, next_id),))
                self.count += 1
                time.sleep(0.002)


@pytest.mark.parametrize("strategy", ["insert_insert", "insert_delete"])
def test_execute_snapshot_with_concurrent_writers_converges(pg_db: Any, kafka_broker: Any, cdcd_procs: list,
                                                            strategy: str) -> None:
    prefix = f"inc{uuid.uuid4().hex[:8]}"
    rows = 2000
    pg_db.execute(f"{SIGNAL_TABLE}; CREATE TABLE orders (id int PRIMARY KEY, v int NOT NULL, note text)")
    pg_db.execute(f"INSERT INTO orders SELECT g, 0, 'seed' FROM generate_series(1, {rows}) g")
    proc = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix,
                 env={"CDCD_INCREMENTAL_SNAPSHOT_WATERMARKING_STRATEGY": strategy})
    with Writers(pg_db, rows) as writers:
        wait_until(lambda: writers.count >= 5, "the writers running")
        # The filter is true, but makes every chunk's SELECT take 30 ms: writers commit changes to rows
        # of the chunk after its SELECT and before its close watermark, the case deduplication is for.
        sid = signal(pg_db, "execute-snapshot", {
            "data-collections": ["public.orders"], "type": "incremental",
            "additional-conditions": [{"data-collection": "public.orders",
                                       "filter": "(SELECT pg_sleep(0.03)) IS NOT NULL"}]})
        proc.wait_for("incremental_snapshot_completed", timeout=90)
        after = writers.count
        wait_until(lambda: writers.count >= after + 5, "changes after the snapshot completed")
    assert writers.count > 20, "the writers must really run during the snapshot"
    records = consume_through_marker(pg_db, kafka_broker.bootstrap, f"{prefix}.public.orders")
    final = table_state(pg_db)
    state, regressions = replay(records)
    assert regressions == [], "a snapshot row must never be older than a change already emitted"
    assert state == final, "replaying the topic gives the table's contents"
    superseded = sum(e["superseded"] for e in proc.logs() if e["event"] == "incremental_snapshot_window_closed")
    assert superseded > 0, "streamed changes must have superseded some chunk rows, or nothing was tested"
    reads = [r.json()["payload"] for r in records if r.value and r.json()["payload"]["op"] == "r"]
    assert reads and {p["source"]["snapshot"] for p in reads} == {"incremental"}
    assert len(reads) <= rows + 1000
    read_ids = {p["after"]["id"] for p in reads}
    untouched = {i for i in range(1, rows + 1) if i in final and final[i] == 0}
    assert untouched <= read_ids, "a row no writer touched reaches Kafka through the snapshot"
    # The watermarks went through the signal table, by the chosen strategy.
    with pg_db.connect() as conn:
        kinds = dict(conn.execute("SELECT type, count(*) FROM dbz_signal GROUP BY type").fetchall())
    if strategy == "insert_insert":
        assert kinds["snapshot-window-open"] == kinds["snapshot-window-close"] >= rows // 100
    else:
        assert "snapshot-window-open" not in kinds and "snapshot-window-close" not in kinds
    assert proc.wait_for("signal_received", id=sid)["type"] == "execute-snapshot"


def test_incremental_snapshot_resumes_after_a_kill(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"ink{uuid.uuid4().hex[:8]}"
    rows = 3000
    pg_db.execute(f"{SIGNAL_TABLE}; CREATE TABLE orders (id int PRIMARY KEY, v int NOT NULL, note text)")
    pg_db.execute(f"INSERT INTO orders SELECT g, 0, 'seed' FROM generate_series(1, {rows}) g")
    env = {"CDCD_INCREMENTAL_SNAPSHOT_CHUNK_SIZE": "20", "CDCD_MAX_BATCH_EVENTS": "30",
           "CDCD_LOG_LEVEL": "debug"}  # batch_committed names the incremental key each commit made durable
    first = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env=env)
    with Writers(pg_db, rows):
        signal(pg_db, "execute-snapshot", {"data-collections": ["public\\.ord.*"]})
        first.wait_for("incremental_snapshot_table_started", timeout=30)
        deadline = time.monotonic() + 30
        while first.text().count('"incremental_snapshot_chunk"') < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.kill()
        assert "incremental_snapshot_completed" not in first.text()
        assert '"incremental_last_key"' in first.text(), "no commit of the first instance logged its snapshot key"
        second = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env=env)
        resumed = second.wait_for("incremental_snapshot_resuming", timeout=30)
        assert resumed["tables"] == ["public.orders"] and resumed["last_key"] is not None
        second.wait_for("incremental_snapshot_completed", timeout=120)
    records = consume_through_marker(pg_db, kafka_broker.bootstrap, f"{prefix}.public.orders")
    final = table_state(pg_db)
    state, regressions = replay(records)
    assert regressions == []
    differ = sorted(k for k in final.keys() | state.keys() if final.get(k) != state.get(k))
    if differ and isinstance(kafka_broker, MockKafka):
        gap = shown_aborted_gap(first, resumed["last_key"])
        if gap is not None and all(k not in state and gap[0] < k <= gap[1] for k in differ):
            print(f"rows {differ} missing behind the killed instance's aborted offsets record (keys {gap}), "
                  "which the embedded broker shows (a real broker hides it; not a loss by cdcd)")
            differ = []
    assert differ == [], f"the topic replayed differs from the table at keys {differ[:20]}"
    # Resumed, not restarted: the second run does not read the whole table again.
    second_reads = sum(1 for r in records if r.value and r.json()["payload"]["op"] == "r")
    assert second_reads < rows * 1.5


def test_table_added_to_the_publication_is_snapshotted_on_request(pg_db: Any, kafka_broker: Any,
                                                                 cdcd_procs: list) -> None:
    prefix = f"ina{uuid.uuid4().hex[:8]}"
    pg_db.execute(f"{SIGNAL_TABLE}; CREATE TABLE first (id int PRIMARY KEY)")
    pg_db.execute("CREATE PUBLICATION cdcd FOR TABLE first, dbz_signal")
    proc = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix)
    pg_db.execute("CREATE TABLE later (id int PRIMARY KEY, v int NOT NULL); "
                  "INSERT INTO later SELECT g, 0 FROM generate_series(1, 250) g")
    pg_db.execute("ALTER PUBLICATION cdcd ADD TABLE later")
    pg_db.execute("UPDATE later SET v = 1 WHERE id = 7; INSERT INTO later VALUES (1000, 0)")
    signal(pg_db, "execute-snapshot", {"data-collections": ["public.later"]})
    proc.wait_for("incremental_snapshot_completed", timeout=60)
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.later", expect=253, timeout=30)
    state, regressions = replay(records)
    assert regressions == []
    assert state == table_state(pg_db, "later")
    ops = sorted(r.json()["payload"]["op"] for r in records if r.value)
    assert ops.count("u") == 1 and ops.count("c") == 1 and ops.count("r") == 251
    # The read events look like Debezium's: same schema and key as streamed events, before null.
    read = next(r for r in records if r.value and r.json()["payload"]["op"] == "r")
    created = next(r for r in records if r.value and r.json()["payload"]["op"] == "c")
    doc, streamed = read.json(), created.json()
    assert doc["schema"] == streamed["schema"]
    assert read.key_json()["payload"] == {"id": doc["payload"]["after"]["id"]}
    assert read.key_json()["schema"] == created.key_json()["schema"]
    payload = doc["payload"]
    assert payload["before"] is None and payload["transaction"] is None
    source = payload["source"]
    assert (source["snapshot"], source["table"], source["schema"], source["connector"]) == (
        "incremental", "later", "public", "postgresql")
    # As Debezium 3.6.3: no txId or lsn on incremental reads; sequence names the closing watermark.
    assert source["txId"] is None and source["lsn"] is None and payload["ts_ms"] >= source["ts_ms"]
    last, position = json.loads(source["sequence"])
    assert int(position) > 0


def test_pause_resume_stop_and_additional_conditions(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"inp{uuid.uuid4().hex[:8]}"
    pg_db.execute(f"{SIGNAL_TABLE}; CREATE TABLE a (id int PRIMARY KEY, v int NOT NULL); "
                  "CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL); CREATE TABLE c (id int PRIMARY KEY, v int)")
    pg_db.execute("INSERT INTO a SELECT g, 0 FROM generate_series(1, 500) g; "
                  "INSERT INTO b SELECT g, 0 FROM generate_series(1, 500) g; "
                  "INSERT INTO c SELECT g, g FROM generate_series(1, 100) g")
    proc = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env={"CDCD_INCREMENTAL_SNAPSHOT_CHUNK_SIZE": "10"})
    topic_a = f"{prefix}.public.a"
    # Paused in the same transaction that started it: only the first chunk goes out.
    with pg_db.connect() as conn, conn.transaction():
        for kind, data in (("execute-snapshot", {"data-collections": ["public.a"]}), ("pause-snapshot", None)):
            conn.execute("INSERT INTO dbz_signal VALUES (%s, %s, %s)",
                         (uuid.uuid4().hex, kind, orjson.dumps(data).decode() if data else None))
    proc.wait_for("incremental_snapshot_paused")
    # A change of `a` committed now: everything before it on the topic is what the pause let out.
    pg_db.execute("INSERT INTO a VALUES (-1, -1)")
    records = consume_all(kafka_broker.bootstrap, topic_a, expect=11, timeout=30)
    # The topic has several partitions and they interleave: the change is among them, not necessarily last.
    ops = [r.json()["payload"]["op"] for r in records]
    assert ops.count("c") == 1, ops
    assert ops.count("r") == 10, "a pause lets the window in flight close, then reads no more chunks"
    signal(pg_db, "resume-snapshot")
    proc.wait_for("incremental_snapshot_completed", timeout=60)
    records = consume_all(kafka_broker.bootstrap, topic_a, expect=501, timeout=30)
    reads = [r for r in records if r.json()["payload"]["op"] == "r"]
    assert sorted(r.json()["payload"]["after"]["id"] for r in reads) == list(range(1, 501))

    # Stopped in the same transaction that started it: nothing of b is read.
    with pg_db.connect() as conn, conn.transaction():
        for kind, data in (("execute-snapshot", {"data-collections": ["public.b"]}), ("stop-snapshot", {})):
            conn.execute("INSERT INTO dbz_signal VALUES (%s, %s, %s)", (uuid.uuid4().hex, kind, orjson.dumps(data).decode()))
    proc.wait_for("incremental_snapshot_stopped")

    # additional-conditions: only the matching rows; a % in the filter is plain SQL.
    signal(pg_db, "execute-snapshot", {"data-collections": ["public.c"], "additional-conditions": [
        {"data-collection": "public.c", "filter": "v % 10 = 0 AND id::text LIKE '%0'"}]})
    deadline = time.monotonic() + 30
    while proc.text().count('"incremental_snapshot_completed"') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    c = consume_all(kafka_broker.bootstrap, f"{prefix}.public.c", expect=10, timeout=20)
    assert sorted(r.json()["payload"]["after"]["id"] for r in c) == list(range(10, 101, 10))
    assert consume_all(kafka_broker.bootstrap, f"{prefix}.public.b", timeout=2) == []

    # A bad signal is logged and ignored; streaming goes on.
    signal(pg_db, "execute-snapshot", {"data-collections": "public.a"})
    assert "data-collections" in proc.wait_for("signal_invalid")["error"]
    pg_db.execute("INSERT INTO a VALUES (1000, 1)")
    after = consume_all(kafka_broker.bootstrap, topic_a, expect=502, timeout=20)
    # The topic has several partitions: the new row is somewhere among them, not necessarily last.
    assert 1000 in [r.json()["payload"]["after"]["id"] for r in after]


def test_signal_table_must_exist_and_be_published(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION cdcd FOR TABLE t")
    env = {"CDCD_SIGNAL_DATA_COLLECTION": "public.dbz_signal"}
    missing = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap], env=env)
    cdcd_procs.append(missing)
    assert missing.wait(30) == 3
    assert "CREATE TABLE public.dbz_signal" in missing.text()
    pg_db.execute(SIGNAL_TABLE)
    unpublished = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap], env=env)
    cdcd_procs.append(unpublished)
    assert unpublished.wait(30) == 3
    assert "ALTER PUBLICATION cdcd ADD TABLE public.dbz_signal" in unpublished.text()


def test_filtered_publication_includes_the_signal_table(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"inf{uuid.uuid4().hex[:8]}"
    pg_db.execute(f"{SIGNAL_TABLE}; CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); CREATE TABLE other (id int)")
    pg_db.execute("INSERT INTO t SELECT g, 0 FROM generate_series(1, 30) g")
    proc = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix,
                 env={"CDCD_PUBLICATION_AUTOCREATE_MODE": "filtered", "CDCD_TABLE_INCLUDE_LIST": r"public\.t"})
    with pg_db.connect() as conn:
        published = {r[0] for r in conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'cdcd'").fetchall()}
    assert published == {"public.t", "public.dbz_signal"}
    signal(pg_db, "execute-snapshot", {"data-collections": ["public.t"]})
    proc.wait_for("incremental_snapshot_completed", timeout=30)
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=30, timeout=20)
    assert sorted(r.json()["payload"]["after"]["id"] for r in records) == list(range(1, 31))
    # The signal table is published but not in table.include.list: its rows are not emitted.
    assert consume_all(kafka_broker.bootstrap, f"{prefix}.public.dbz_signal", timeout=2) == []
