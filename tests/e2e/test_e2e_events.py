"""Debezium's event kinds beyond row changes, against a real PostgreSQL (stdout sink: total order)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.fix_cdcd import StdoutRun

pytestmark = [pytest.mark.pg]


def payloads(lines: list[dict[str, Any]], topic: str) -> list[dict[str, Any]]:
    return [line["value"]["payload"] for line in lines if line["topic"] == topic and line["value"]]


def test_logical_decoding_messages(pg_db: Any, cdcd_procs: list) -> None:
    run = StdoutRun(cdcd_procs, pg_db)
    pg_db.execute("SELECT pg_logical_emit_message(true, 'audit', 'hello')")
    pg_db.execute("SELECT pg_logical_emit_message(false, 'ping', '\\x0102'::bytea)")
    with pg_db.connect() as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_logical_emit_message(true, 'rolled', 'back')")
        conn.execute("ROLLBACK")
    lines = run.through_marker(pg_db)
    run.stop()
    assert [line["topic"] for line in lines] == ["ev.message", "ev.message"], "rolled-back message must vanish"
    first, second = lines
    assert first["key"] == {"schema": {"type": "struct", "fields": [{"type": "string", "optional": True,
                                                                      "field": "prefix"}],
                                       "optional": False, "name": "io.debezium.connector.postgresql.MessageKey",
                                       "version": 1}, "payload": {"prefix": "audit"}}
    value = first["value"]
    assert value["schema"]["name"] == "io.debezium.connector.postgresql.MessageValue"
    assert [f["field"] for f in value["schema"]["fields"]] == ["op", "ts_ms", "source", "transaction", "message"]
    p = value["payload"]
    assert p["op"] == "m" and p["message"] == {"prefix": "audit", "content": base64.b64encode(b"hello").decode()}
    assert p["source"]["schema"] == "" and p["source"]["table"] == "" and isinstance(p["source"]["txId"], int)
    q = second["value"]["payload"]
    assert q["message"]["content"] == base64.b64encode(b"\x01\x02").decode() and q["source"]["txId"] is None


def test_truncate_skipped_by_default_and_emitted_on_request(pg_db: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    run = StdoutRun(cdcd_procs, pg_db)
    pg_db.execute("INSERT INTO t VALUES (1)")
    pg_db.execute("TRUNCATE t")
    pg_db.execute("INSERT INTO t VALUES (2)")
    lines = run.through_marker(pg_db)
    run.stop()
    assert [p["op"] for p in payloads(lines, "ev.public.t")] == ["c", "c"]

    pg_db.execute("SELECT pg_drop_replication_slot('cdcd')")
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_SKIPPED_OPERATIONS": "none", "CDCD_SNAPSHOT_MODE": "no_data"})
    pg_db.execute("TRUNCATE t")
    pg_db.execute("UPDATE t SET id = id")
    lines = run.wait(1)
    run.stop()
    truncate = lines[0]
    assert truncate["key"] is None and truncate["value"]["payload"]["op"] == "t"
    assert truncate["value"]["payload"]["before"] is None and truncate["value"]["payload"]["after"] is None


def test_skipped_operations_updates(pg_db: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_SKIPPED_OPERATIONS": "u"})
    pg_db.execute("INSERT INTO t VALUES (1, 1); UPDATE t SET v = 2; DELETE FROM t")
    lines = run.wait(3)
    run.stop()
    assert [(p["op"] if p else None) for p in (line["value"] and line["value"]["payload"] for line in lines)] == [
        "c", "d", None]


def test_transaction_metadata(pg_db: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)")
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_PROVIDE_TRANSACTION_METADATA": "true"})
    pg_db.execute("BEGIN; INSERT INTO a VALUES (1), (2); INSERT INTO b VALUES (1); COMMIT")
    lines = run.wait(5)
    run.stop()
    assert [line["topic"] for line in lines] == ["ev.transaction", "ev.public.a", "ev.public.a", "ev.public.b",
                                                 "ev.transaction"]
    begin, end = lines[0]["value"]["payload"], lines[4]["value"]["payload"]
    events = [line["value"]["payload"] for line in lines[1:4]]
    txid = events[0]["source"]["txId"]
    assert begin["status"] == "BEGIN" and begin["id"] == f"{txid}:{events[0]['transaction']['id'].split(':')[1]}"
    assert [e["transaction"]["total_order"] for e in events] == [1, 2, 3]
    assert [e["transaction"]["data_collection_order"] for e in events] == [1, 2, 1]
    assert end["status"] == "END" and end["event_count"] == 3 and end["id"].startswith(f"{txid}:")
    assert sorted((d["data_collection"], d["event_count"]) for d in end["data_collections"]) == [
        ("public.a", 2), ("public.b", 1)]


def test_transaction_metadata_as_debezium(pg_db: Any, cdcd_procs: list) -> None:
    """As Debezium 3.6.3: BEGIN/END for every transaction pgoutput sends, and block ids "<txId>:<event lsn>"."""
    pg_db.execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE ex (id int PRIMARY KEY)")
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_PROVIDE_TRANSACTION_METADATA": "true",
                                            "CDCD_TABLE_EXCLUDE_LIST": "public.ex", "CDCD_SKIPPED_OPERATIONS": "d"})
    pg_db.execute("INSERT INTO ex VALUES (1)")
    pg_db.execute("BEGIN; INSERT INTO a VALUES (1); INSERT INTO ex VALUES (2); INSERT INTO a VALUES (2); COMMIT")
    pg_db.execute("DELETE FROM a")  # skipped.operations=d given: the publication sends no delete
    pg_db.execute("INSERT INTO a VALUES (3)")
    lines = run.wait(9)
    run.stop()
    payloads = [line["value"]["payload"] for line in lines]
    assert [(line["topic"], p.get("status") or p["op"]) for line, p in zip(lines, payloads)] == [
        ("ev.transaction", "BEGIN"), ("ev.transaction", "END"),
        ("ev.transaction", "BEGIN"), ("ev.public.a", "c"), ("ev.public.a", "c"), ("ev.transaction", "END"),
        # the deletes' transaction: nothing published, so PostgreSQL sends nothing, as to Debezium
        ("ev.transaction", "BEGIN"), ("ev.public.a", "c"), ("ev.transaction", "END")]
    assert (payloads[1]["event_count"], payloads[1]["data_collections"]) == (0, [])
    begin, first, second = payloads[2:5]
    for event in (first, second):
        assert event["transaction"]["id"] == f"{event['source']['txId']}:{event['source']['lsn']}"
    assert first["transaction"]["id"] == begin["id"] != second["transaction"]["id"]


MESSAGE_ID = "io.debezium.connector.postgresql.LogicalDecodingMessageMonitor$LogicalDecodingMessageId@"


def test_transaction_metadata_counts_messages(pg_db: Any, cdcd_procs: list) -> None:
    """As Debezium 3.6.3: a transactional message is a data event of a collection of its own."""
    pg_db.execute("CREATE TABLE a (id int PRIMARY KEY)")
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_PROVIDE_TRANSACTION_METADATA": "true"})
    pg_db.execute("SELECT pg_logical_emit_message(true, 'only', 'm1')")
    pg_db.execute("BEGIN; INSERT INTO a VALUES (1); SELECT pg_logical_emit_message(true, 'mid', 'm2');"
                  " SELECT pg_logical_emit_message(true, 'mid', 'm3'); INSERT INTO a VALUES (2);"
                  " SELECT pg_logical_emit_message(false, 'now', 'm4'); COMMIT")
    lines = run.wait(10)
    run.stop()
    assert [(line["topic"], (line["value"]["payload"].get("status") or line["value"]["payload"]["op"]))
            for line in lines] == [
        ("ev.transaction", "BEGIN"), ("ev.message", "m"), ("ev.transaction", "END"),
        # A non-transactional message is sent when it is written, before the transaction's commit.
        ("ev.message", "m"),
        ("ev.transaction", "BEGIN"), ("ev.public.a", "c"), ("ev.message", "m"), ("ev.message", "m"),
        ("ev.public.a", "c"), ("ev.transaction", "END")]
    only, nontransactional = lines[1]["value"]["payload"], lines[3]["value"]["payload"]
    assert only["transaction"] == {"id": lines[0]["value"]["payload"]["id"], "total_order": 1,
                                   "data_collection_order": 1}
    end = lines[2]["value"]["payload"]
    assert end["event_count"] == 1 and [d["event_count"] for d in end["data_collections"]] == [1]
    assert end["data_collections"][0]["data_collection"].startswith(MESSAGE_ID)
    assert nontransactional["message"]["prefix"] == "now" and nontransactional["transaction"] is None
    events = [line["value"]["payload"] for line in lines[5:9]]
    assert [(e["transaction"]["total_order"], e["transaction"]["data_collection_order"]) for e in events] == [
        (1, 1), (2, 1), (3, 1), (4, 2)]
    end = lines[9]["value"]["payload"]
    assert end["event_count"] == 4
    collections = {d["data_collection"]: d["event_count"] for d in end["data_collections"]}
    assert collections.pop("public.a") == 2
    assert len(collections) == 2 and all(name.startswith(MESSAGE_ID) and n == 1 for name, n in collections.items())


def test_schema_changes_mid_stream_and_new_tables(pg_db: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    run = StdoutRun(cdcd_procs, pg_db)
    pg_db.execute("INSERT INTO t VALUES (1, 'a')")
    pg_db.execute("ALTER TABLE t ADD COLUMN n numeric(5,1) DEFAULT 1.5")
    pg_db.execute("INSERT INTO t VALUES (2, 'b', 2.5)")
    pg_db.execute("ALTER TABLE t DROP COLUMN v")
    pg_db.execute("ALTER TABLE t ALTER COLUMN n TYPE text")
    pg_db.execute("INSERT INTO t VALUES (3, 'x')")
    pg_db.execute("ALTER TABLE t RENAME COLUMN n TO label")
    pg_db.execute("INSERT INTO t VALUES (4, 'y')")
    pg_db.execute("CREATE TABLE later (id int PRIMARY KEY)")
    pg_db.execute("INSERT INTO later VALUES (7)")
    lines = run.wait(5)
    run.stop()
    fields = [[f["field"] for f in line["value"]["schema"]["fields"][1]["fields"]] for line in lines[:4]]
    assert fields == [["id", "v"], ["id", "v", "n"], ["id", "n"], ["id", "label"]]
    after = [line["value"]["payload"]["after"] for line in lines[:4]]
    assert after == [{"id": 1, "v": "a"}, {"id": 2, "v": "b", "n": "GQ=="}, {"id": 3, "n": "x"},
                     {"id": 4, "label": "y"}]
    n_schema = lines[1]["value"]["schema"]["fields"][1]["fields"][2]
    assert n_schema["name"] == "org.apache.kafka.connect.data.Decimal" and n_schema["parameters"]["scale"] == "1"
    assert lines[4]["topic"] == "ev.public.later" and lines[4]["value"]["payload"]["after"] == {"id": 7}


def test_heartbeats(pg_db: Any, cdcd_procs: list) -> None:
    pg_db.execute("CREATE TABLE hb (id int PRIMARY KEY, ts timestamptz)")
    pg_db.execute("INSERT INTO hb VALUES (1, now())")
    run = StdoutRun(cdcd_procs, pg_db, env={
        "CDCD_HEARTBEAT_INTERVAL_MS": "300", "CDCD_TABLE_EXCLUDE_LIST": "public\\.hb",
        "CDCD_HEARTBEAT_ACTION_QUERY": "UPDATE hb SET ts = now() WHERE id = 1"})
    lines = run.wait(3, timeout=10)
    run.stop()
    beats = [line for line in lines if line["topic"] == "__debezium-heartbeat.ev"]
    assert len(beats) >= 3
    assert beats[0]["key"]["payload"] == {"serverName": "ev"}
    assert beats[0]["value"]["schema"]["name"] == "io.debezium.connector.common.Heartbeat"
    assert isinstance(beats[0]["value"]["payload"]["ts_ms"], int)
    assert all(line["topic"] != "ev.public.hb" for line in lines), "the excluded table's updates are not emitted"
    assert pg_db.execute("SELECT ts > now() - interval '5 seconds' FROM hb")[0][0], "the action query ran"
