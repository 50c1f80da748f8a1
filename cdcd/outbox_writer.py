"""Write outbox events from an application, inside its own transaction.

``emit(conn, "Order", order.id, "OrderCreated", {...})`` records an event in the
caller's open transaction and never commits: the event exists if and only if
the business change it describes commits, which is the point of the outbox
pattern. cdcd's ``OutboxRouter`` (``cdcd.debezium.transforms.outbox``) turns it into a
Kafka record. Two ways to store it (docs/outbox.md compares them):

- the outbox table (``OUTBOX_TABLE_DDL``): queryable, but rows pile up until deleted;
- ``use_message=True``: ``pg_logical_emit_message(true, prefix, json)``, which
  exists only in the WAL: nothing to clean up, nothing to query.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb


def outbox_table_ddl(table: str = "outbox") -> str:
    """The table Debezium's EventRouter expects by default (``table`` may be ``schema.name``)."""
    name = ".".join(f'"{part}"' for part in table.split("."))
    return (
        f"CREATE TABLE IF NOT EXISTS {name} (\n"
        "    id uuid PRIMARY KEY,\n"
        "    aggregatetype varchar(255) NOT NULL,\n"
        "    aggregateid varchar(255) NOT NULL,\n"
        "    type varchar(255) NOT NULL,\n"
        "    payload jsonb\n"
        ")"
    )


OUTBOX_TABLE_DDL: Final = outbox_table_ddl()


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def emit(
    conn: psycopg.Connection[Any],
    aggregate_type: str,
    aggregate_id: str | int | uuid.UUID,
    type: str,  # noqa: A002 - Debezium's column name
    payload: Any,
    *,
    table: str = "outbox",
    use_message: bool = False,
    prefix: str = "outbox",
    event_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Record one event in ``conn``'s current transaction and return its id (the Kafka ``id`` header).

    ``aggregate_type`` picks the topic (``outbox.event.<aggregate_type>`` by
    default), ``aggregate_id`` is the Kafka key (so one aggregate's events stay
    in order), ``payload`` is any JSON-serializable value (None is SQL NULL: an
    empty event, a tombstone with ``route.tombstone.on.empty.payload``). The
    transaction is the caller's to commit or roll back; an autocommit connection
    outside ``conn.transaction()`` is refused, as the event would commit alone.
    """
    if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        raise ValueError("emit() must run inside the transaction that changes the data the event describes: "
                         "use a non-autocommit connection or `with conn.transaction():`")
    eid = event_id if event_id is not None else uuid.uuid4()
    if use_message:
        content = _dumps({"id": str(eid), "aggregatetype": aggregate_type, "aggregateid": str(aggregate_id),
                          "type": type, "payload": payload})
        conn.execute("SELECT pg_logical_emit_message(true, %s, %s::text)", (prefix, content))
    else:
        query = sql.SQL("INSERT INTO {} (id, aggregatetype, aggregateid, type, payload)"
                        " VALUES (%s, %s, %s, %s, %s)").format(sql.Identifier(*table.split(".")))
        data = None if payload is None else Jsonb(payload, dumps=_dumps)
        conn.execute(query, (eid, aggregate_type, str(aggregate_id), type, data))
    return eid
