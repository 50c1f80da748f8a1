"""ExtractNewRecordState tests: envelopes from ``TableEncoder`` in, Debezium 3's flattened rows out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdcd.debezium.envelope import (
    EnvelopeOptions,
    Record,
    SourceInfo,
    TableEncoder,
    TransactionContext,
    transaction_begin_record,
)
from cdcd.debezium.transforms import UnwrapOptions, Unwrapper, unwrap
from cdcd.errors import ConfigError
from cdcd.source.tables import ColumnInfo, TableInfo

ORDERS = TableInfo(16400, "public", "orders", (
    ColumnInfo("id", 23, "int4", -1, False),
    ColumnInfo("status", 25, "text", -1, True),
), ("id",))
ENCODER = TableEncoder(ORDERS, EnvelopeOptions(topic_prefix="shop", database="shopdb", connector_version="0.1.0"))
SOURCE = SourceInfo(ts_us=1_700_000_000_123_456, txid=771, lsn=2_000_000, last_commit_lsn=1_999_000)
KEY = b'{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,' \
      b'"name":"shop.public.orders.Key"},"payload":{"id":1}}'
COLUMNS = [{"type": "int32", "optional": False, "field": "id"}, {"type": "string", "optional": True, "field": "status"}]
ROW_SCHEMA = {"type": "struct", "fields": COLUMNS, "optional": False, "name": "shop.public.orders.Value"}
DELETED = {"type": "string", "optional": True, "field": "__deleted"}

INSERT, = ENCODER.create(("1", "new"), SOURCE, None)
UPDATE, = ENCODER.update(None, None, ("1", "paid"), SOURCE, TransactionContext(771, 2_000_000, 1_700_000_000_123))
DELETE, TOMBSTONE = ENCODER.delete("K", ("1", None), SOURCE, None)
TRUNCATE, = ENCODER.truncate(SOURCE, None)


def value(record: Record | None) -> dict[str, Any]:
    assert record is not None and record.value is not None
    return json.loads(record.value)  # type: ignore[no-any-return]


def run(records: list[Record], **options: Any) -> list[Record]:
    u = Unwrapper(UnwrapOptions(**options))
    return [r for r in (u(record) for record in records) if r is not None]


def test_insert_and_update_become_the_row() -> None:
    out = run([INSERT, UPDATE])
    assert [r.topic for r in out] == ["shop.public.orders"] * 2 and [r.key for r in out] == [KEY, KEY]
    assert value(out[0]) == {"schema": ROW_SCHEMA, "payload": {"id": 1, "status": "new"}}
    assert value(out[1])["payload"] == {"id": 1, "status": "paid"}


def test_schema_key_order_is_jsonconverters() -> None:
    assert (unwrap(INSERT, UnwrapOptions()) or INSERT).value == (
        b'{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},'
        b'{"type":"string","optional":true,"field":"status"}],"optional":false,"name":"shop.public.orders.Value"},'
        b'"payload":{"id":1,"status":"new"}}')


@pytest.mark.parametrize(("options", "expected"), [
    ({}, ["null-with-schema"]),  # Debezium 3's default: tombstone
    ({"delete_tombstone_handling_mode": "tombstone"}, ["null-with-schema"]),
    ({"delete_tombstone_handling_mode": "drop"}, []),
    ({"delete_tombstone_handling_mode": "rewrite"}, ["rewritten"]),
    ({"delete_tombstone_handling_mode": "rewrite-with-tombstone"}, ["rewritten", "tombstone"]),
    ({"delete_tombstone_handling_mode": "delete-to-tombstone"}, ["tombstone"]),
    ({"delete_handling_mode": "drop"}, []),  # legacy, drop.tombstones defaults to true
    ({"delete_handling_mode": "none", "drop_tombstones": False}, ["null-with-schema", "tombstone"]),
    ({"delete_handling_mode": "rewrite", "drop_tombstones": False}, ["rewritten", "tombstone"]),
    ({"drop_tombstones": False}, ["tombstone"]),
    ({"delete_tombstone_handling_mode": "drop", "delete_handling_mode": "rewrite"}, []),  # the new option wins
])
def test_delete_handling(options: dict[str, Any], expected: list[str]) -> None:
    kinds = []
    for r in run([DELETE, TOMBSTONE], **options):
        assert r.key == KEY and r.topic == "shop.public.orders"
        if r.value is None:
            kinds.append("tombstone")
        elif value(r)["payload"] is None:
            # the Value schema as it is in the envelope (optional), with a null payload: not a Kafka tombstone
            assert value(r)["schema"] == {**ROW_SCHEMA, "optional": True}
            kinds.append("null-with-schema")
        else:
            assert value(r) == {"schema": {**ROW_SCHEMA, "fields": COLUMNS + [DELETED]},
                                "payload": {"id": 1, "status": None, "__deleted": "true"}}
            kinds.append("rewritten")
    assert kinds == expected


def test_rewrite_marks_inserts_too() -> None:
    (out,) = run([INSERT], delete_tombstone_handling_mode="rewrite")
    assert value(out)["payload"] == {"id": 1, "status": "new", "__deleted": "false"}


def test_add_fields_names_schemas_and_values() -> None:
    (out,) = run([UPDATE], delete_tombstone_handling_mode="rewrite",
                 add_fields=("op", "table", "lsn", "source.ts_ms", "ts_ms", "db", "schema", "txId", "snapshot",
                             "id", "source.ts_us:commit_us", "nope"))
    v = value(out)
    added = v["schema"]["fields"][2:]
    assert [f["field"] for f in added] == [
        "__deleted", "__op", "__table", "__lsn", "__source_ts_ms", "__ts_ms", "__db", "__schema", "__txId",
        "__snapshot", "__id", "__commit_us"]  # an absent field ("nope") is left out
    assert all(f["optional"] for f in added) and not any("default" in f for f in added)
    assert added[1] == {"type": "string", "optional": True, "field": "__op"}
    assert added[9]["name"] == "io.debezium.data.Enum" and "parameters" in added[9]
    payload = v["payload"]
    assert (payload["__op"], payload["__table"], payload["__lsn"], payload["__source_ts_ms"]) == (
        "u", "orders", 2_000_000, 1_700_000_000_123)
    assert (payload["__db"], payload["__schema"], payload["__txId"], payload["__snapshot"]) == (
        "shopdb", "public", 771, "false")
    assert payload["__id"] == "771:2000000" and payload["__commit_us"] == 1_700_000_000_123_456
    assert payload["__ts_ms"] == json.loads(UPDATE.value or b"")["payload"]["ts_ms"]  # processing time


def test_add_fields_on_rewritten_deletes_and_a_custom_prefix() -> None:
    (out,) = run([DELETE], delete_tombstone_handling_mode="rewrite", add_fields=("op", "id"), add_fields_prefix="m_")
    payload = value(out)["payload"]
    assert payload == {"id": 1, "status": None, "__deleted": "true", "m_op": "d", "m_id": None}  # no transaction


def test_add_headers() -> None:
    (out,) = run([INSERT], add_headers=("op", "db", "lsn", "xmin", "source.ts_ms:ts"))
    assert out.headers == (("__op", b"c"), ("__db", b"shopdb"), ("__lsn", b"2000000"), ("__ts", b"1700000000123"))
    (tomb,) = run([TOMBSTONE], add_headers=("op", "db"), delete_tombstone_handling_mode="rewrite-with-tombstone")
    assert tomb.value is None and tomb.headers == (("__op", b"d"),)


def test_primary_key_change_keeps_debeziums_headers() -> None:
    records = ENCODER.update("K", ("1", None), ("2", "moved"), SOURCE, None)
    out = run(records, delete_tombstone_handling_mode="rewrite", add_headers=("op",))
    assert [value(r)["payload"]["__deleted"] for r in out] == ["true", "false"]
    assert out[0].headers[0][0] == "__debezium.newkey" and out[0].headers[1] == ("__op", b"d")
    assert out[1].headers[0][0] == "__debezium.oldkey"


def test_route_by_field() -> None:
    (out,) = run([INSERT], route_by_field="status")
    assert out.topic == "new"
    (out,) = run([DELETE], route_by_field="status", delete_tombstone_handling_mode="rewrite")
    assert out.topic == "shop.public.orders"  # NULL value: the topic stays


def test_truncates_dropped_and_other_records_pass() -> None:
    metadata = transaction_begin_record("shop", TransactionContext(1, 2, 3))
    assert run([TRUNCATE, metadata]) == [metadata]


def test_from_properties() -> None:
    o = UnwrapOptions.from_properties({
        "transforms.unwrap.delete.tombstone.handling.mode": "Rewrite",
        "transforms.unwrap.add.fields": "op,table,source.ts_ms:EVENT_TS",
        "transforms.unwrap.add.headers": ["db"],
        "transforms.unwrap.drop.tombstones": "false",
        "transforms.outbox.route.by.field": "x",
    }, prefix="transforms.unwrap.")
    assert o.delete_plan == ("rewrite", False)
    assert o.add_fields == ("op", "table", "source.ts_ms:EVENT_TS") and o.add_headers == ("db",)
    assert UnwrapOptions(delete_handling_mode="rewrite", drop_tombstones=False).delete_plan == ("rewrite", True)


@pytest.mark.parametrize("props", [
    {"delete.tombstone.handling.mode": "keep"},
    {"delete.handling.mode": "tombstone"},
    {"drop.tombstones": "perhaps"},
    {"add.fields": "a:b:c"},
    {"add.feilds": "op"},
])
def test_bad_properties(props: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        UnwrapOptions.from_properties(props)
