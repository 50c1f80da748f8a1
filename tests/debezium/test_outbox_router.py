"""Outbox EventRouter tests: hand-made outbox rows and messages in, Debezium's records out.

The expected bytes are what Debezium's ``EventRouter`` with JsonConverter
(``schemas.enable=true``) and ``SimpleHeaderConverter`` produce for the standard
outbox table (docs: "Outbox Event Router").
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from cdcd.debezium.envelope import EnvelopeOptions, Record, SourceInfo
from cdcd.debezium.transforms import AdditionalField, OutboxError, OutboxOptions, OutboxRecord, OutboxRouter
from cdcd.decode.messages import LogicalMessage
from cdcd.errors import ConfigError
from cdcd.source.tables import ColumnInfo, TableInfo

VARCHAR_255 = 255 + 4
STANDARD = (
    ColumnInfo("id", 2950, "uuid", -1, False),
    ColumnInfo("aggregatetype", 1043, "varchar", VARCHAR_255, False),
    ColumnInfo("aggregateid", 1043, "varchar", VARCHAR_255, False),
    ColumnInfo("type", 1043, "varchar", VARCHAR_255, False),
    ColumnInfo("payload", 3802, "jsonb", -1, True),
)
OUTBOX = TableInfo(16500, "public", "outbox", STANDARD, ("id",))
EVENT_ID = "406c07f3-26f0-4eea-a50c-109940064b8f"
PAYLOAD = ('{"id": 1, "lineItems": [{"id": 1, "item": "Debezium in Action", "status": "ENTERED", "quantity": 2, '
           '"totalPrice": 39.98}, {"id": 2, "item": "Debezium for Dummies", "status": "ENTERED", "quantity": 1, '
           '"totalPrice": 29.99}], "orderDate": "2019-01-31T12:13:01", "customerId": 123}')
ROW = (EVENT_ID, "order", "1", "OrderCreated", PAYLOAD)
SOURCE = SourceInfo(ts_us=1_556_890_294_448_870, txid=584, lsn=24064704, last_commit_lsn=None)
ENVELOPE = EnvelopeOptions(topic_prefix="dbserver1", database="orderdb", connector_version="0.1.0")
KEY_1 = b'{"schema":{"type":"string","optional":false},"payload":"1"}'
JSON_SCHEMA = {"type": "string", "optional": True, "name": "io.debezium.data.Json", "version": 1}


def router(**options: Any) -> OutboxRouter:
    return OutboxRouter(OutboxOptions(**options), ENVELOPE)


def one(records: list[Record]) -> OutboxRecord:
    assert len(records) == 1
    assert isinstance(records[0], OutboxRecord)
    return records[0]


def value(record: Record) -> dict[str, Any]:
    assert record.value is not None
    return json.loads(record.value)  # type: ignore[no-any-return]


def message(content: dict[str, Any] | bytes, lsn: int = 0x16_3002D50, prefix: str = "outbox") -> LogicalMessage:
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    return LogicalMessage(True, lsn, prefix, data, None)


# --- options -----------------------------------------------------------------------------

def test_defaults_are_debeziums() -> None:
    o = OutboxOptions()
    assert (o.table_field_event_id, o.table_field_event_key, o.table_field_event_type,
            o.table_field_event_payload) == ("id", "aggregateid", "type", "payload")
    assert (o.route_by_field, o.route_topic_regex, o.route_topic_replacement) == (
        "aggregatetype", "(?<routedByValue>.*)", "outbox.event.${routedByValue}")
    assert not o.table_expand_json_payload and o.table_field_event_timestamp is None
    assert o.table_op_invalid_behavior == "warn" and o.message_prefix == "outbox"


def test_from_properties_uses_debezium_names_and_a_prefix() -> None:
    o = OutboxOptions.from_properties({
        "transforms.outbox.table.expand.json.payload": "true",
        "transforms.outbox.table.fields.additional.placement": "type:header:eventType, region:envelope , p:partition",
        "transforms.outbox.route.by.field": "kind",
        "transforms.outbox.table.field.event.timestamp": "",
        "transforms.outbox.table.include.list": ["public\\.outbox", "app\\..*_outbox"],
        "transforms.outbox.route.tombstone.on.empty.payload": True,
        "transforms.unwrap.add.fields": "op",  # another transform's: not ours
    }, prefix="transforms.outbox.")
    assert o.table_expand_json_payload and o.route_tombstone_on_empty_payload
    assert o.route_by_field == "kind" and o.table_field_event_timestamp is None
    assert o.table_fields_additional_placement == (
        AdditionalField("type", "header", "eventType"), AdditionalField("region", "envelope", "region"),
        AdditionalField("p", "partition", "p"))
    assert o.table_include_list == ("public\\.outbox", "app\\..*_outbox")


@pytest.mark.parametrize("props", [
    {"route.by.feild": "x"},
    {"table.fields.additional.placement": "type:body"},
    {"table.fields.additional.placement": "type"},
    {"table.expand.json.payload": "maybe"},
    {"table.op.invalid.behavior": "ignore"},
    {"route.topic.regex": "(unclosed"},
    {"route.topic.replacement": "x.${nope}"},
    {"route.topic.replacement": "x.$"},
])
def test_bad_properties_are_config_errors(props: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        OutboxOptions.from_properties(props)


# --- table variant -----------------------------------------------------------------------

def test_standard_row_as_debezium_routes_it() -> None:
    rec = one(router().route_row(OUTBOX, ROW, SOURCE))
    assert rec.topic == "outbox.event.order"
    assert rec.key == KEY_1
    assert rec.value == b'{"schema":' + json.dumps(JSON_SCHEMA, separators=(",", ":")).encode() \
        + b',"payload":' + json.dumps(PAYLOAD, separators=(",", ":")).encode() + b"}"
    assert rec.headers == (("id", EVENT_ID.encode()),)  # type is not a header unless placed
    assert rec.timestamp_ms is None and rec.partition is None


def test_expand_json_payload_infers_the_schema() -> None:
    rec = one(router(table_expand_json_payload=True).route_row(OUTBOX, ROW, SOURCE))
    v = value(rec)
    assert v["payload"] == json.loads(PAYLOAD)
    line_item = {"type": "struct", "fields": [
        {"type": "int32", "optional": True, "field": "id"}, {"type": "string", "optional": True, "field": "item"},
        {"type": "string", "optional": True, "field": "status"},
        {"type": "int32", "optional": True, "field": "quantity"},
        {"type": "double", "optional": True, "field": "totalPrice"},
    ], "optional": True, "name": "payload.lineItems"}
    assert v["schema"] == {"type": "struct", "fields": [
        {"type": "int32", "optional": True, "field": "id"},
        {"type": "array", "items": line_item, "optional": True, "field": "lineItems"},
        {"type": "string", "optional": True, "field": "orderDate"},
        {"type": "int32", "optional": True, "field": "customerId"},
    ], "optional": True, "name": "payload"}


def test_expand_json_nulls_big_ints_and_merged_array_elements() -> None:
    payload = '{"a": null, "big": 9000000000, "empty": [], "xs": [{"k": 1}, {"k": 2, "extra": "e"}]}'
    rec = one(router(table_expand_json_payload=True).route_row(OUTBOX, ROW[:4] + (payload,), SOURCE))
    v = value(rec)
    assert [f["field"] for f in v["schema"]["fields"]] == ["big", "xs"]  # null and [] have no schema
    assert v["schema"]["fields"][0]["type"] == "int64"
    assert v["schema"]["fields"][1]["items"]["optional"] is False  # merged like copySchemaBasics
    assert v["payload"] == {"big": 9000000000, "xs": [{"k": 1, "extra": None}, {"k": 2, "extra": "e"}]}
    kept = one(router(table_expand_json_payload=True, table_json_payload_null_behavior="optional_bytes")
               .route_row(OUTBOX, ROW[:4] + (payload,), SOURCE))
    assert value(kept)["schema"]["fields"][0] == {"type": "bytes", "optional": True, "field": "a"}


@pytest.mark.parametrize("payload", ['[1, 2]', '"just a string"', '[1, "mixed"]'])
def test_unexpandable_payloads_stay_strings(payload: str) -> None:
    r = router(table_expand_json_payload=True)
    rec = one(r.route_row(OUTBOX, ROW[:4] + (payload,), SOURCE))
    assert value(rec) == {"schema": JSON_SCHEMA, "payload": payload}
    assert r.expand_failures == 1


def test_additional_fields_in_header_envelope_and_partition() -> None:
    table = TableInfo(16501, "public", "outbox", STANDARD + (
        ColumnInfo("region", 25, "text", -1, True), ColumnInfo("part", 23, "int4", -1, True),
        ColumnInfo("version", 23, "int4", -1, True)), ("id",))
    r = router(table_fields_additional_placement=(
        AdditionalField("type", "header", "eventType"), AdditionalField("type", "envelope", "eventType"),
        AdditionalField("region", "envelope", "region"), AdditionalField("region", "header", "region"),
        AdditionalField("part", "partition", "part")), table_field_event_schema_version="version")
    rec = one(r.route_row(table, ROW + (None, "3", "7"), SOURCE))
    assert rec.headers == (("id", EVENT_ID.encode()), ("eventType", b"OrderCreated"))  # NULL region: no header
    assert rec.partition == 3
    assert value(rec) == {
        "schema": {"type": "struct", "fields": [
            {**JSON_SCHEMA, "field": "payload"},
            {"type": "string", "optional": False, "field": "eventType"},
            {"type": "string", "optional": True, "field": "region"},
        ], "optional": False, "name": "dbserver1.public.outbox.order.Value", "version": 7},
        "payload": {"payload": PAYLOAD, "eventType": "OrderCreated", "region": None},
    }


def test_missing_columns() -> None:
    with pytest.raises(OutboxError, match="route.by.field"):
        router(route_by_field="kind").route_row(OUTBOX, ROW, SOURCE)
    with pytest.raises(OutboxError, match="region"):
        router(table_fields_additional_placement=(AdditionalField("region", "header", "region"),)).route_row(
            OUTBOX, ROW, SOURCE)
    lenient = router(table_fields_additional_placement=(AdditionalField("region", "header", "region"),),
                     table_fields_additional_error_on_missing=False)
    assert one(lenient.route_row(OUTBOX, ROW, SOURCE)).headers == (("id", EVENT_ID.encode()),)


def test_topic_regex_and_replacement_follow_regexrouter() -> None:
    r = router(route_topic_regex="(?<kind>[a-z]+)-(\\d+)", route_topic_replacement="events.${kind}.v$2")
    assert one(r.route_row(OUTBOX, (EVENT_ID, "order-2", "1", "t", "{}"), SOURCE)).topic == "events.order.v2"
    # RegexRouter leaves a non-matching topic alone: the routed value itself
    assert one(r.route_row(OUTBOX, (EVENT_ID, "Customer", "1", "t", "{}"), SOURCE)).topic == "Customer"
    with pytest.raises(OutboxError, match="Kafka refuses"):
        router().route_row(OUTBOX, (EVENT_ID, "order lines", "1", "t", "{}"), SOURCE)
    nullable = TableInfo(16503, "public", "outbox", (STANDARD[0], ColumnInfo("aggregatetype", 25, "text", -1, True),
                                                     *STANDARD[2:]), ("id",))
    with pytest.raises(OutboxError, match="NULL"):
        router().route_row(nullable, (EVENT_ID, None, "1", "t", "{}"), SOURCE)


@pytest.mark.parametrize(("type_name", "oid", "typmod", "text", "ms"), [
    ("timestamp", 1114, -1, "2019-05-03 13:31:34.344123", 1556890294344),
    ("timestamp", 1114, 3, "2019-05-03 13:31:34.344", 1556890294344),
    ("timestamptz", 1184, -1, "2019-05-03 15:31:34.344+02", 1556890294344),
])
def test_event_timestamp_column(type_name: str, oid: int, typmod: int, text: str, ms: int) -> None:
    table = TableInfo(16502, "public", "outbox", STANDARD + (ColumnInfo("ts", oid, type_name, typmod, True),), ("id",))
    r = router(table_field_event_timestamp="ts")
    assert one(r.route_row(table, ROW + (text,), SOURCE)).timestamp_ms == ms
    assert one(r.route_row(table, ROW + (None,), SOURCE)).timestamp_ms is None  # the producer's time


def test_timestamp_column_of_another_type_is_refused() -> None:
    with pytest.raises(OutboxError, match="timestamp"):
        router(table_field_event_timestamp="type").route_row(OUTBOX, ROW, SOURCE)


def test_empty_payload_tombstone() -> None:
    for empty in (None, "  "):
        rec = one(router(route_tombstone_on_empty_payload=True).route_row(OUTBOX, ROW[:4] + (empty,), SOURCE))
        assert rec.value is None and rec.key == KEY_1 and rec.headers == (("id", EVENT_ID.encode()),)
    rec = one(router().route_row(OUTBOX, ROW[:4] + (None,), SOURCE))
    assert value(rec) == {"schema": JSON_SCHEMA, "payload": None}


def test_updates_deletes_and_truncates() -> None:
    r = router()
    assert r.on_delete(OUTBOX) == [] and r.on_truncate(OUTBOX) == []
    assert r.on_update(OUTBOX) == [] and r.update_log_level == "warning"
    assert "public.outbox" in r.warning_for_update(OUTBOX) and "insert-only" in r.warning_for_update(OUTBOX)
    assert router(table_op_invalid_behavior="error").update_log_level == "error"
    with pytest.raises(OutboxError, match="insert-only"):
        router(table_op_invalid_behavior="fatal").on_update(OUTBOX)


def test_handles_tables_by_include_list() -> None:
    r = router(table_include_list=("public\\.outbox", "app\\..*_events"))
    assert r.handles_table(OUTBOX)
    assert r.handles_table(TableInfo(1, "APP", "Order_Events", STANDARD, ()))
    assert not r.handles_table(TableInfo(1, "public", "outbox_archive", STANDARD, ()))
    assert not router().handles_table(OUTBOX)  # no list: the table variant is off


# --- message variant ---------------------------------------------------------------------

CONTENT = {"id": EVENT_ID, "aggregatetype": "order", "aggregateid": "1", "type": "OrderCreated",
           "payload": json.loads(PAYLOAD)}


def test_message_gives_the_tables_record() -> None:
    from_row = one(router().route_row(OUTBOX, ROW, SOURCE))
    from_message = one(router().route_message(message(CONTENT), SOURCE))
    assert (from_message.topic, from_message.key, from_message.headers) == (
        from_row.topic, from_row.key, from_row.headers)
    v = value(from_message)
    assert v["schema"] == JSON_SCHEMA
    assert json.loads(v["payload"]) == json.loads(PAYLOAD)  # compact JSON instead of jsonb's text
    expanded = [value(one(router(table_expand_json_payload=True).route_message(message(CONTENT), SOURCE))),
                value(one(router(table_expand_json_payload=True).route_row(OUTBOX, ROW, SOURCE)))]
    assert expanded[0] == expanded[1]


def test_message_placements_use_the_standard_columns_schemas() -> None:
    placements = (AdditionalField("type", "envelope", "eventType"), AdditionalField("tenant", "envelope", "tenant"),
                  AdditionalField("type", "header", "eventType"))
    rec = one(router(table_fields_additional_placement=placements).route_message(
        message({**CONTENT, "tenant": 42}), SOURCE))
    v = value(rec)
    assert v["schema"]["name"] == "order"  # Debezium names a message's envelope after the routed value
    assert v["schema"]["fields"][1:] == [{"type": "string", "optional": False, "field": "eventType"},
                                         {"type": "int32", "optional": True, "field": "tenant"}]
    assert v["payload"]["tenant"] == 42 and rec.headers[-1] == ("eventType", b"OrderCreated")


def test_message_without_id_gets_a_replay_stable_id() -> None:
    content = {k: v for k, v in CONTENT.items() if k != "id"}
    first = one(router().route_message(message(content, lsn=1000), SOURCE)).headers
    again = one(router().route_message(message(content, lsn=1000), SOURCE)).headers
    other = one(router().route_message(message(content, lsn=1001), SOURCE)).headers
    assert first == again != other
    assert uuid.UUID(first[0][1].decode()).version == 5


def test_message_ids_keys_and_timestamps_of_other_json_types() -> None:
    content = {**CONTENT, "id": 17, "aggregateid": 99, "ts": "2019-05-03T13:31:34.344Z", "payload": None}
    rec = one(router(table_field_event_timestamp="ts").route_message(message(content), SOURCE))
    assert rec.headers == (("id", b"17"),)
    assert json.loads(rec.key or b"")["payload"] == "99"
    assert rec.timestamp_ms == 1556890294344
    assert value(rec)["payload"] is None
    rec = one(router(table_field_event_timestamp="ts").route_message(message({**content, "ts": 1234}), SOURCE))
    assert rec.timestamp_ms == 1234


def test_other_prefixes_are_not_outbox_events() -> None:
    r = router(message_prefix="events")
    assert r.route_message(message(CONTENT), SOURCE) == []
    assert not r.handles_message(message(CONTENT)) and r.handles_message(message(CONTENT, prefix="events"))


@pytest.mark.parametrize(("content", "match"), [
    (b"not json", "not JSON"),
    (b'["a list"]', "not a JSON object"),
    ({"aggregateid": "1", "payload": {}}, "aggregatetype"),
    ({"aggregatetype": "order", "payload": {}}, "aggregateid"),
])
def test_malformed_messages_say_what_is_missing(content: dict[str, Any] | bytes, match: str) -> None:
    with pytest.raises(OutboxError, match=match):
        router().route_message(message(content), SOURCE)
