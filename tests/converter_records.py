"""Records of every kind cdcd writes, in JsonConverter-with-schemas form, for the converter tests.

``every_record()`` gives (label, record) pairs: change events (c, r, u, a key change
with its headers, d + tombstone, t) of a table with a column of every type family
under several type-mapping options, transaction BEGIN/END, a heartbeat, a logical
decoding message, a schema change event, outbox records (string and expanded JSON
payloads) and flattened (unwrap) records including a delete with a null payload.
"""

from __future__ import annotations

from typing import Any, Iterator

import orjson

from cdcd.debezium.envelope import (
    EnvelopeOptions,
    Record,
    SourceInfo,
    TableEncoder,
    TransactionContext,
    transaction_begin_record,
    transaction_end_record,
)
from cdcd.debezium.heartbeat import heartbeat_record
from cdcd.debezium.message_events import MessageEncoder
from cdcd.debezium.schema_change import SchemaChangeEncoder, parse
from cdcd.debezium.transforms import OutboxOptions, OutboxRouter, UnwrapOptions, Unwrapper
from cdcd.decode.messages import LogicalMessage
from cdcd.source.tables import ColumnInfo, TableInfo

NUMERIC_10_2 = (10 << 16 | 2) + 4
# (column, text value as pgoutput sends it)
FAMILIES: tuple[tuple[ColumnInfo, bytes | None], ...] = (
    (ColumnInfo("id", 23, "int4", -1, False), b"1"),
    (ColumnInfo("c_int2", 21, "int2", -1, True, "7"), b"2"),
    (ColumnInfo("c_int8", 20, "int8", -1, False, "0"), b"9000000000"),
    (ColumnInfo("c_float4", 700, "float4", -1, True), b"1.5"),
    (ColumnInfo("c_float8", 701, "float8", -1, True), b"NaN"),
    (ColumnInfo("c_numeric", 1700, "numeric", NUMERIC_10_2, True, "1.50"), b"-3.14"),
    (ColumnInfo("c_numeric_var", 1700, "numeric", -1, True), b"12.345"),
    (ColumnInfo("c_money", 790, "money", -1, True), b"$12.34"),
    (ColumnInfo("c_bool", 16, "bool", -1, False, "true"), b"t"),
    (ColumnInfo("c_text", 25, "text", -1, False, "'n/a'::text"), b"x\"y\\z \xc3\xa9"),
    (ColumnInfo("c_varchar", 1043, "varchar", 24, True), b"short"),
    (ColumnInfo("c_char", 1042, "bpchar", 7, True), b"ab "),
    (ColumnInfo("c_bytea", 17, "bytea", -1, True), b"\\x0102ff"),
    (ColumnInfo("c_date", 1082, "date", -1, True, "'2020-01-01'::date"), b"2020-01-02"),
    (ColumnInfo("c_time", 1083, "time", -1, True), b"12:34:56.789"),
    (ColumnInfo("c_timetz", 1266, "timetz", -1, True), b"12:34:56+02"),
    (ColumnInfo("c_timestamp", 1114, "timestamp", -1, True), b"2020-01-01 00:00:00.123456"),
    (ColumnInfo("c_timestamptz", 1184, "timestamptz", -1, True), b"2020-01-01 00:00:00+00"),
    (ColumnInfo("c_interval", 1186, "interval", -1, True), b"1 day 02:00:00"),
    (ColumnInfo("c_uuid", 2950, "uuid", -1, True), b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    (ColumnInfo("c_json", 114, "json", -1, True), b'{"a": 1}'),
    (ColumnInfo("c_jsonb", 3802, "jsonb", -1, True), b'{"b": [1, 2]}'),
    (ColumnInfo("c_xml", 142, "xml", -1, True), b"<a>1</a>"),
    (ColumnInfo("c_inet", 869, "inet", -1, True), b"10.0.0.1"),
    (ColumnInfo("c_macaddr", 829, "macaddr", -1, True), b"08:00:2b:01:02:03"),
    (ColumnInfo("c_bit", 1560, "bit", 3, True), b"101"),
    (ColumnInfo("c_varbit", 1562, "varbit", -1, True), b"1011"),
    (ColumnInfo("c_point", 600, "point", -1, True), b"(1,2)"),
    (ColumnInfo("c_range", 3904, "int4range", -1, True), b"[1,5)"),
    (ColumnInfo("c_hstore", 16400, "hstore", -1, True), b'"a"=>"1", "b"=>NULL'),
    (ColumnInfo("c_mood", 16401, "mood", -1, True, None, "e"), b"happy"),
    (ColumnInfo("c_int_array", 1007, "_int4", -1, True), b"{1,NULL,3}"),
    (ColumnInfo("c_text_array", 1009, "_text", -1, True), b'{a,"b c"}'),
    (ColumnInfo("c_numeric_array", 1231, "_numeric", -1, True), b"{1.5,2}"),
)
COLUMNS = tuple(c for c, _ in FAMILIES)
ROW = tuple(v for _, v in FAMILIES)
NULLS = tuple(v if not c.optional else None for c, v in FAMILIES)
TABLE = TableInfo(16384, "public", "families", COLUMNS, ("id",))
NO_KEY = TableInfo(16385, "public", "no_key", COLUMNS[:3], ())
ENUMS = {"mood": ("sad", "happy")}
SOURCE = SourceInfo(ts_us=1_700_000_000_123_456, txid=812, lsn=26997904, last_commit_lsn=26990000)
# Type-mapping options whose schemas differ.
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "double": {"decimal_handling_mode": "double", "binary_handling_mode": "base64",
               "hstore_handling_mode": "map", "interval_handling_mode": "string"},
    "string": {"decimal_handling_mode": "string", "time_precision_mode": "connect", "binary_handling_mode": "hex"},
    "micros": {"time_precision_mode": "adaptive_time_microseconds", "tombstones_on_delete": False},
}


def options(prefix: str = "shop", **kw: Any) -> EnvelopeOptions:
    return EnvelopeOptions(prefix, "shopdb", "3.6.3.Final", **kw)


def change_events(variant: str = "defaults", prefix: str = "shop") -> Iterator[tuple[str, Record]]:
    encoder = TableEncoder(TABLE, options(prefix, **VARIANTS[variant]), enum_values=ENUMS)
    txn = TransactionContext(812, 26990000, 1_700_000_000_123)
    changed_key = (b"2",) + ROW[1:]
    batches = {
        "create": encoder.create(ROW, SOURCE, txn),
        "create_nulls": encoder.create(NULLS, SOURCE, txn),
        "read": encoder.create(ROW, SourceInfo(SOURCE.ts_us, None, 1, None, "first"), None, "r"),
        "update": encoder.update("O", NULLS, ROW, SOURCE, txn),
        "update_no_old": encoder.update(None, None, ROW, SOURCE, None),
        "key_change": encoder.update("K", ROW, changed_key, SOURCE, txn),
        "delete": encoder.delete("O", ROW, SOURCE, txn),
        "truncate": encoder.truncate(SOURCE, txn),
    }
    for label, records in batches.items():
        for i, record in enumerate(records):
            yield f"{variant}:{label}:{i}", record
    for i, record in enumerate(TableEncoder(NO_KEY, options(prefix)).create(ROW[:3], SOURCE, None)):
        yield f"{variant}:no_key:{i}", record


def other_events(prefix: str = "shop") -> Iterator[tuple[str, Record]]:
    from tests.debezium.test_schema_change import MESSAGE

    txn = TransactionContext(812, 26990000, 1_700_000_000_123)
    txn.next_block("public.families")
    yield "tx_begin", transaction_begin_record(prefix, txn)
    yield "tx_end", transaction_end_record(prefix, txn, 26997904)
    yield "heartbeat", heartbeat_record("__debezium-heartbeat", prefix, 1_700_000_000_000)
    yield "message", MessageEncoder(prefix, "shopdb", "3.6.3.Final").record("app", b"\x00hi", SOURCE, None)
    ddl = SchemaChangeEncoder(prefix, "shopdb", "3.6.3.Final", lambda name: True).record(parse(MESSAGE), SOURCE)
    assert ddl is not None
    yield "schema_change", ddl


OUTBOX = TableInfo(16500, "public", "outbox", (
    ColumnInfo("id", 2950, "uuid", -1, False), ColumnInfo("aggregatetype", 1043, "varchar", 259, False),
    ColumnInfo("aggregateid", 1043, "varchar", 259, False), ColumnInfo("type", 1043, "varchar", 259, False),
    ColumnInfo("payload", 3802, "jsonb", -1, True)), ("id",))
OUTBOX_ROW = (b"406c07f3-26f0-4eea-a50c-109940064b8f", b"order", b"1", b"OrderCreated",
              b'{"id": 1, "items": [{"sku": "A", "qty": 2}], "total": 39.98, "note": null}')


def transformed_events(prefix: str = "shop") -> Iterator[tuple[str, Record]]:
    for expand in (False, True):
        router = OutboxRouter(OutboxOptions(table_expand_json_payload=expand,
                                            table_fields_additional_placement=()), options(prefix))
        for i, record in enumerate(router.route_row(OUTBOX, OUTBOX_ROW, SOURCE)):
            yield f"outbox:{'expanded' if expand else 'string'}:{i}", record
    router = OutboxRouter(OutboxOptions(), options(prefix))
    message = LogicalMessage(True, 0x163002D50, "outbox", b'{"aggregatetype": "order", "aggregateid": "7", '
                             b'"type": "Shipped", "payload": {"n": 1}}', None)
    for i, record in enumerate(router.route_message(message, SOURCE)):
        yield f"outbox:message:{i}", record
    for mode in ("tombstone", "rewrite"):
        unwrap = Unwrapper(UnwrapOptions(delete_tombstone_handling_mode=mode, add_fields=("op", "source.ts_ms")))
        for label, record in change_events(prefix=prefix):
            if label.split(":")[1] in ("create", "delete", "update"):
                out = unwrap(record)
                if out is not None:
                    yield f"unwrap:{mode}:{label}", out


def every_record(prefix: str = "shop") -> list[tuple[str, Record]]:
    out: list[tuple[str, Record]] = []
    for variant in VARIANTS:
        out.extend(change_events(variant, prefix))
    out.extend(other_events(prefix))
    out.extend(transformed_events(prefix))
    out.extend(synthetic_events())
    return out


def _f(type_: str, field: str, optional: bool = True, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "optional": optional, **extra, "field": field}


# Connect shapes Debezium's PostgreSQL connector does not emit but a converter must handle:
# int8, maps with non-string keys, unnamed structs, docs, defaults of every kind.
SYNTHETIC_SCHEMA: dict[str, Any] = {
    "type": "struct", "optional": False, "name": "synthetic.Value", "version": 3, "doc": "made by hand",
    "fields": [
        _f("int8", "tiny", False, default=-3),
        _f("int16", "small", True, default=5),
        _f("float", "ratio", True, default=0.5),
        _f("double", "big", False, default=1.25),
        _f("bytes", "blob", True, default="AAEC"),
        _f("bytes", "amount", True, name="org.apache.kafka.connect.data.Decimal", version=1,
           parameters={"scale": "3"}, default="AeI="),
        _f("boolean", "flag", False, default=False),
        _f("string", "label", True, doc="a label", parameters={"avro.java.string": "String"}),
        {"type": "map", "keys": {"type": "int32", "optional": False},
         "values": {"type": "string", "optional": True}, "optional": True, "field": "by_id"},
        {"type": "map", "keys": {"type": "string", "optional": False},
         "values": {"type": "int64", "optional": False}, "optional": False, "name": "synthetic.Counts",
         "field": "counts"},
        {"type": "array", "items": {"type": "struct", "optional": True, "fields": [_f("int32", "x")]},
         "optional": True, "field": "points"},
        {"type": "struct", "optional": True, "fields": [_f("string", "y"), _f("int8", "z", False)],
         "field": "other"},
        {"type": "array", "items": {"type": "int32", "optional": False}, "optional": True, "default": [1, 2],
         "field": "defaults"},
        {"type": "int32", "optional": True, "name": "org.apache.kafka.connect.data.Date", "version": 1,
         "field": "day"},
        {"type": "int64", "optional": True, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1,
         "field": "when"},
    ],
}
SYNTHETIC_PAYLOAD: dict[str, Any] = {
    "tiny": -1, "small": 300, "ratio": 0.25, "big": -2.5, "blob": "/wA=", "amount": "AeI=", "flag": True,
    "label": "é", "by_id": [[1, "one"], [2, None]], "counts": {"a": 1, "b": 9007199254740993},
    "points": [{"x": 1}, None, {"x": None}], "other": {"y": "why", "z": 7}, "defaults": [3], "day": 18000,
    "when": 1_700_000_000_123,
}


def synthetic_events() -> Iterator[tuple[str, Record]]:
    value = orjson.dumps({"schema": SYNTHETIC_SCHEMA, "payload": SYNTHETIC_PAYLOAD})
    # NULLs as cdcd writes them (replace.null.with.default): a field with a default holds the default
    nulls = {f["field"]: f.get("default") for f in SYNTHETIC_SCHEMA["fields"]} | {"counts": {}}
    key = orjson.dumps({"schema": {"type": "string", "optional": False}, "payload": "k"})
    yield "synthetic:values", Record("synthetic", key, value)
    yield "synthetic:nulls", Record("synthetic", key, orjson.dumps({"schema": SYNTHETIC_SCHEMA, "payload": nulls}))
