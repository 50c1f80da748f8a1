"""Transactional outbox end to end: application transactions → cdcd → routed events in Kafka."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from cdcd.outbox_writer import OUTBOX_TABLE_DDL, emit
from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import consume_all

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


def start(procs: list[CdcdProcess], pg_db: Any, bootstrap: str, tmp_path: Path, prefix: str) -> CdcdProcess:
    config = tmp_path / "cdcd.toml"
    config.write_text(
        f'dsn = "{pg_db.dsn}"\n"bootstrap.servers" = "{bootstrap}"\n"topic.prefix" = "{prefix}"\n'
        '[transforms.outbox]\n"table.include.list" = ["public\\\\.outbox"]\n"message.prefix" = "outbox"\n'
        '"table.expand.json.payload" = true\n'
        f'"route.topic.replacement" = "{prefix}.outbox.event.${{routedByValue}}"\n')
    proc = CdcdProcess(["run", "--config", str(config)])
    procs.append(proc)
    proc.wait_for("streaming")
    return proc


def place_order(conn: Any, order_id: int, total: int, *, use_message: bool, commit: bool) -> uuid.UUID | None:
    """The application's unit of work: its data and its event in one transaction."""
    event_id = None
    try:
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total",
                         (order_id, total))
            event_id = emit(conn, "order", order_id, "OrderPlaced", {"id": order_id, "total": total},
                            use_message=use_message)
            if not commit:
                raise _Rollback
    except _Rollback:
        return None
    return event_id


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("use_message", [False, True], ids=["table", "message"])
def test_outbox_events_exactly_as_committed(pg_db: Any, kafka_broker: Any, cdcd_procs: list, tmp_path: Path,
                                            use_message: bool) -> None:
    prefix = f"ob{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE orders (id int PRIMARY KEY, total int NOT NULL)")
    pg_db.execute(OUTBOX_TABLE_DDL)
    start(cdcd_procs, pg_db, kafka_broker.bootstrap, tmp_path, prefix)
    committed: list[tuple[int, int, uuid.UUID]] = []
    with pg_db.connect() as conn:
        for i in range(30):
            order_id, total = i % 4, 100 + i
            event_id = place_order(conn, order_id, total, use_message=use_message, commit=i % 3 != 2)
            if event_id is not None:
                committed.append((order_id, total, event_id))
        if not use_message:
            conn.execute("DELETE FROM outbox")  # the usual clean-up job: ignored by the router
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.outbox.event.order", expect=len(committed), timeout=30,
                          settle=2.0)
    assert len(records) == len(committed), "rolled-back transactions must produce nothing"
    by_key: dict[int, list[tuple[int, str]]] = {}
    for r in records:
        key = json.loads(r.key)
        assert key["schema"] == {"type": "string", "optional": False}
        value = r.json()
        headers = dict(r.headers)
        by_key.setdefault(int(key["payload"]), []).append((value["payload"]["total"], headers["id"].decode()))
        assert value["payload"]["id"] == int(key["payload"])
    expected: dict[int, list[tuple[int, str]]] = {}
    for order_id, total, event_id in committed:
        expected.setdefault(order_id, []).append((total, str(event_id)))
    assert by_key == expected, "each committed event once, with its id header, in order per aggregate id"
    assert not consume_all(kafka_broker.bootstrap, f"{prefix}.public.outbox", timeout=2), \
        "outbox rows are routed, not emitted as change events"
    orders = consume_all(kafka_broker.bootstrap, f"{prefix}.public.orders", timeout=10, expect=1)
    assert orders, "the application's own table is still captured"
