"""``cdcd.outbox_writer.emit`` against a real PostgreSQL: the event exists if and only if the transaction commits."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from cdcd.debezium.envelope import SourceInfo
from cdcd.debezium.transforms import OutboxOptions, OutboxRouter
from cdcd.decode.messages import Begin, Commit, Insert, LogicalMessage
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.outbox_writer import OUTBOX_TABLE_DDL, emit, outbox_table_ddl
from cdcd.source.tables import ColumnInfo, TableInfo

SOURCE = SourceInfo(ts_us=0, txid=None, lsn=0, last_commit_lsn=None)


def _changes(pg_db: Any, slot: str) -> list[object]:
    """Everything committed since the slot was made, decoded by cdcd's own decoder."""
    with pg_db.connect() as conn:
        rows = conn.execute(
            "SELECT data FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, 'proto_version', '1',"
            " 'publication_names', 'p', 'messages', 'true')", (slot,)).fetchall()
    decoder = PgOutputDecoder()
    return [decoder.decode(data) for (data,) in rows]


def test_table_variant_writes_the_row_only_on_commit(pg_db: Any) -> None:
    pg_db.execute(OUTBOX_TABLE_DDL)
    with psycopg.connect(pg_db.dsn) as conn:
        rolled_back = emit(conn, "order", 1, "OrderCreated", {"id": 1})
        conn.rollback()
        committed = emit(conn, "order", "1", "OrderPaid", {"id": 1, "total": 9.5, "lines": [1, 2]})
        other = emit(conn, "customer", uuid.UUID(int=7), "CustomerMoved", None, event_id=uuid.UUID(int=42))
        conn.commit()
    rows = pg_db.execute("SELECT id, aggregatetype, aggregateid, type, payload FROM outbox ORDER BY type")
    assert rolled_back not in [r[0] for r in rows]
    assert rows == [
        (other, "customer", str(uuid.UUID(int=7)), "CustomerMoved", None),
        (committed, "order", "1", "OrderPaid", {"id": 1, "total": 9.5, "lines": [1, 2]}),
    ]
    assert other == uuid.UUID(int=42) and committed.version == 4


def test_table_name_may_be_schema_qualified(pg_db: Any) -> None:
    pg_db.execute("CREATE SCHEMA app")
    pg_db.execute(outbox_table_ddl("app.events"))
    with psycopg.connect(pg_db.dsn) as conn:
        emit(conn, "order", "1", "OrderCreated", [], table="app.events")
    assert pg_db.execute("SELECT type, payload FROM app.events") == [("OrderCreated", [])]


def test_autocommit_outside_a_transaction_is_refused(pg_db: Any) -> None:
    pg_db.execute(OUTBOX_TABLE_DDL)
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        with pytest.raises(ValueError, match="inside the transaction"):
            emit(conn, "order", "1", "OrderCreated", {})
        with conn.transaction():
            emit(conn, "order", "1", "OrderCreated", {})
    assert pg_db.execute("SELECT count(*) FROM outbox") == [(1,)]


def test_message_variant_is_decoded_only_when_committed(pg_db: Any) -> None:
    pg_db.execute("CREATE PUBLICATION p FOR ALL TABLES")
    pg_db.execute("SELECT pg_create_logical_replication_slot('outbox_test', 'pgoutput')")
    with psycopg.connect(pg_db.dsn) as conn:
        emit(conn, "order", "1", "OrderCreated", {"n": 1}, use_message=True)
        conn.rollback()
        event_id = emit(conn, "order", "1", "OrderPaid", {"n": 2}, use_message=True)
        emit(conn, "order", "1", "Audit", {"n": 3}, use_message=True, prefix="audit")
        conn.commit()
    changes = _changes(pg_db, "outbox_test")
    assert [type(c) for c in changes] == [Begin, LogicalMessage, LogicalMessage, Commit]
    outbox, audit = changes[1], changes[2]
    assert isinstance(outbox, LogicalMessage) and isinstance(audit, LogicalMessage)
    assert outbox.transactional and outbox.prefix == "outbox" and audit.prefix == "audit"
    assert json.loads(outbox.content) == {"id": str(event_id), "aggregatetype": "order", "aggregateid": "1",
                                          "type": "OrderPaid", "payload": {"n": 2}}
    # and the router makes the outbox record of it, and nothing of the other prefix
    router = OutboxRouter(OutboxOptions())
    (record,) = router.route_message(outbox, SOURCE)
    assert record.topic == "outbox.event.order" and record.headers == (("id", str(event_id).encode()),)
    assert router.route_message(audit, SOURCE) == []


def test_table_variant_through_the_decoder_and_router(pg_db: Any) -> None:
    """The row as pgoutput sends it gives the same record as the message would."""
    pg_db.execute(OUTBOX_TABLE_DDL)
    pg_db.execute("CREATE PUBLICATION p FOR TABLE outbox")
    pg_db.execute("SELECT pg_create_logical_replication_slot('outbox_rows', 'pgoutput')")
    event_id = uuid.UUID(int=1)
    with psycopg.connect(pg_db.dsn) as conn:
        emit(conn, "order", "1", "OrderCreated", {"n": 1}, event_id=event_id)
        emit(conn, "order", "1", "OrderCreated", {"n": 1}, event_id=event_id, use_message=True)
    changes = _changes(pg_db, "outbox_rows")
    (insert,) = [c for c in changes if isinstance(c, Insert)]
    (msg,) = [c for c in changes if isinstance(c, LogicalMessage)]
    table = TableInfo(insert.relation.oid, "public", "outbox", tuple(
        ColumnInfo(c.name, c.type_oid, {2950: "uuid", 1043: "varchar", 3802: "jsonb"}[c.type_oid], c.type_modifier,
                   c.name == "payload") for c in insert.relation.columns), ("id",))
    router = OutboxRouter(OutboxOptions(table_include_list=("public\\.outbox",), table_expand_json_payload=True))
    assert router.handles_table(table)
    (from_row,) = router.route_row(table, insert.new, SOURCE)
    (from_message,) = router.route_message(msg, SOURCE)
    assert from_row == from_message
