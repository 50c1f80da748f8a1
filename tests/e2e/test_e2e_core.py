"""End to end: a real PostgreSQL, the real ``cdcd run``, the embedded Kafka broker."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess, StdoutRun
from tests.fix_kafka import Record, consume_all
from tests.waiting import wait_until

pytestmark = [pytest.mark.pg, pytest.mark.kafka]

SCHEMA = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email varchar(200), active boolean DEFAULT true);
CREATE TABLE order_lines (order_id integer NOT NULL, line_no integer NOT NULL, sku text NOT NULL,
                          qty integer NOT NULL, price numeric(10,2), PRIMARY KEY (order_id, line_no));
"""


def start_cdcd(procs: list[CdcdProcess], pg_db: Any, bootstrap: str, prefix: str, *extra: str) -> CdcdProcess:
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", bootstrap,
                        "--topic-prefix", prefix, *extra])
    procs.append(proc)
    proc.wait_for("streaming")
    return proc


def slot_confirmed_lsn(pg_db: Any, slot: str = "cdcd") -> int | None:
    with pg_db.connect() as conn:
        row = conn.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def current_lsn(pg_db: Any) -> int:
    with pg_db.connect() as conn:
        return int(conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])


def by_key(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        out[r.key.decode() if r.key else ""].append(r)
    return out


def test_changes_arrive_as_debezium_envelopes_in_commit_order(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    pg_db.execute(SCHEMA)
    start_cdcd(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix)
    pg_db.execute("INSERT INTO customers (name, email) VALUES ('Ann', 'ann@example.com'), ('Bob', NULL)")
    with pg_db.connect() as conn:  # one multi-statement transaction across two tables
        with conn.transaction():
            conn.execute("INSERT INTO order_lines VALUES (1, 1, 'A', 2, 9.99), (1, 2, 'B', 1, 19.50)")
            conn.execute("UPDATE customers SET email = 'bob@example.com' WHERE name = 'Bob'")
            conn.execute("UPDATE order_lines SET qty = 3 WHERE order_id = 1 AND line_no = 1")
    pg_db.execute("DELETE FROM order_lines WHERE order_id = 1 AND line_no = 2")
    pg_db.execute("UPDATE order_lines SET line_no = 5 WHERE order_id = 1 AND line_no = 1")  # key change

    topics = [f"{prefix}.public.customers", f"{prefix}.public.order_lines"]
    # customers: 2 c + 1 u; order_lines: 2 c + 1 u + (d + tombstone) + (d + tombstone + c)
    records = consume_all(kafka_broker.bootstrap, topics, expect=11, timeout=30)
    assert len(records) == 11, [r.json() for r in records]
    keyed = by_key([r for r in records if r.topic.endswith("order_lines")])

    line1 = [r.json() for r in keyed['{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"order_id"},{"type":"int32","optional":false,"field":"line_no"}],"optional":false,"name":"%s.public.order_lines.Key"},"payload":{"order_id":1,"line_no":1}}' % prefix]]
    assert [v["payload"]["op"] if v else None for v in line1] == ["c", "u", "d", None]
    create, update, delete = (v["payload"] for v in line1[:3])
    assert create["after"] == {"order_id": 1, "line_no": 1, "sku": "A", "qty": 2, "price": "A+c="}
    assert update["before"] is None and update["after"]["qty"] == 3
    assert delete["before"] == {"order_id": 1, "line_no": 1, "sku": "", "qty": 0, "price": None}
    # the whole multi-statement transaction shares txId and is ordered by lsn
    assert create["source"]["txId"] == update["source"]["txId"]
    assert create["source"]["lsn"] < update["source"]["lsn"] < delete["source"]["lsn"]

    source = create["source"]
    assert source["connector"] == "postgresql" and source["name"] == prefix
    assert source["db"] == pg_db.dbname and source["schema"] == "public" and source["table"] == "order_lines"
    assert source["snapshot"] == "false" and isinstance(source["lsn"], int) and isinstance(source["ts_ms"], int)
    assert source["sequence"].startswith("[") and str(source["lsn"]) in source["sequence"]
    schema = line1[0]["schema"]
    assert schema["name"] == f"{prefix}.public.order_lines.Envelope"
    assert [f["field"] for f in schema["fields"]] == ["before", "after", "source", "transaction", "op",
                                                       "ts_ms", "ts_us", "ts_ns"]

    moved = [r.json() for r in records if r.topic.endswith("order_lines") and r.key_json()["payload"]["line_no"] == 5]
    assert [v["payload"]["op"] for v in moved] == ["c"]
    deleted2 = [r for r in records if r.topic.endswith("order_lines") and r.key_json()["payload"]["line_no"] == 2]
    assert [r.json()["payload"]["op"] if r.value else None for r in deleted2] == ["c", "d", None]

    customers: dict[int, list[dict[str, Any]]] = defaultdict(list)  # order is per key (partition)
    for r in records:
        if r.topic.endswith("customers"):
            customers[r.key_json()["payload"]["id"]].append(r.json()["payload"])
    assert [(p["op"], p["after"]["name"], p["after"]["email"]) for p in customers[1]] == [
        ("c", "Ann", "ann@example.com")]
    assert [(p["op"], p["after"]["name"], p["after"]["email"]) for p in customers[2]] == [
        ("c", "Bob", None), ("u", "Bob", "bob@example.com")]
    assert customers[2][1]["source"]["txId"] == create["source"]["txId"]


def test_restart_resumes_without_loss_and_confirms_only_delivered(pg_db: Any, kafka_broker: Any,
                                                                  cdcd_procs: list) -> None:
    prefix = f"rs{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    proc = start_cdcd(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix)
    pg_db.execute("INSERT INTO t SELECT g, 'a' FROM generate_series(1, 50) g")
    assert len(consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=50, timeout=20)) == 50
    assert proc.terminate() == 0
    confirmed_at_stop = slot_confirmed_lsn(pg_db)
    pg_db.execute("INSERT INTO t SELECT g, 'b' FROM generate_series(51, 120) g")  # while cdcd is down
    assert slot_confirmed_lsn(pg_db) == confirmed_at_stop

    start_cdcd(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix)
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=120, timeout=30)
    ids = [r.json()["payload"]["after"]["id"] for r in records]
    assert sorted(ids) == list(range(1, 121)), "every row exactly once after a clean stop and restart"


def test_broker_outage_never_confirms_undelivered_changes(pg_db: Any, fresh_kafka_broker: Any,
                                                          cdcd_procs: list) -> None:
    prefix = f"out{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    proc = start_cdcd(cdcd_procs, pg_db, fresh_kafka_broker.bootstrap, prefix, "--log-level", "info")
    pg_db.execute("INSERT INTO t VALUES (1)")
    assert len(consume_all(fresh_kafka_broker.bootstrap, f"{prefix}.public.t", expect=1, timeout=20)) == 1
    row1_lsn = current_lsn(pg_db)
    wait_until(lambda: (slot_confirmed_lsn(pg_db) or 0) >= row1_lsn, "row 1 confirmed")
    fresh_kafka_broker.down()
    pg_db.execute("INSERT INTO t VALUES (2)")
    commit_lsn = current_lsn(pg_db)
    # cdcd tried to deliver row 2 and Kafka did not take it: the stream is interrupted, and
    # nothing of row 2 may have been confirmed.
    proc.wait_for("stream_interrupted", timeout=120)
    confirmed = slot_confirmed_lsn(pg_db)
    assert confirmed is not None
    assert confirmed < commit_lsn, "the LSN of a change Kafka did not acknowledge was confirmed"
    fresh_kafka_broker.up()
    records = consume_all(fresh_kafka_broker.bootstrap, f"{prefix}.public.t", expect=2, timeout=60)
    assert sorted(r.json()["payload"]["after"]["id"] for r in records if r.value) [-1] == 2
    wait_until(lambda: (slot_confirmed_lsn(pg_db) or 0) >= commit_lsn, "row 2 confirmed once Kafka took it")


def test_idle_database_slot_keeps_advancing(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    """Writes to unpublished tables must not make the slot retain WAL."""
    prefix = f"idle{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE captured (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY)")
    pg_db.execute("CREATE PUBLICATION only_captured FOR TABLE captured")
    start_cdcd(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, "--publication", "only_captured")
    pg_db.execute("INSERT INTO other SELECT generate_series(1, 1000)")
    target = current_lsn(pg_db)
    wait_until(lambda: (slot_confirmed_lsn(pg_db) or 0) >= target, "the slot confirmed past unpublished writes")


def test_stdout_sink_prints_json_lines(pg_db: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    run = StdoutRun(cdcd_procs, pg_db, "--topic-prefix", "demo")
    pg_db.execute("INSERT INTO t VALUES (1, 'x'); DELETE FROM t WHERE id = 1")
    lines = run.through_marker(pg_db)
    run.stop()
    assert [(l["topic"], l["key"]["payload"], l["value"]["payload"]["op"] if l["value"] else None)
            for l in lines] == [("demo.public.t", {"id": 1}, "c"), ("demo.public.t", {"id": 1}, "d"),
                                ("demo.public.t", {"id": 1}, None)]
