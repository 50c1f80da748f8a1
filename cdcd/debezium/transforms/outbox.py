"""Transactional outbox: Debezium's EventRouter, for outbox-table rows and logical-decoding messages.

An application records an event in the same transaction as the data it
describes, either as a row of an outbox table or with
``pg_logical_emit_message(true, 'outbox', '{"aggregatetype": ..., ...}')``
(see ``cdcd.outbox_writer.emit``). Either way the event reaches Kafka only if the
transaction committed, and exactly as Debezium's ``EventRouter`` SMT with
JsonConverter (``schemas.enable=true``) and Connect's default
``SimpleHeaderConverter`` would print it; for the standard table::

    topic    outbox.event.<aggregatetype>             (route.topic.replacement)
    key      {"schema":{"type":"string","optional":false},"payload":"<aggregateid>"}
    value    {"schema":{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1},
              "payload":"<payload as jsonb prints it>"}  (a struct with table.expand.json.payload)
    headers  id=<event id>  (+ table.fields.additional.placement "column:header[:alias]")

``type`` is not a header unless placed (``type:header:eventType``), as in
Debezium. A message gives the record the standard table would, so consumers
need not know the variant; two differences remain: its payload string is
compact JSON (not jsonb's text form), and with ``envelope`` placements the value
struct is named after the routed value alone, as Debezium names it for messages.
Deletes of outbox rows are ignored; updates are ignored with a warning
(``table.op.invalid.behavior``).
"""

from __future__ import annotations

import re
import uuid
from collections import namedtuple
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from cdcd.debezium.connect_json import framed, head
from cdcd.debezium.envelope import EnvelopeOptions, Record, sanitize_topic
from cdcd.debezium.source_info import SourceInfo
from cdcd.debezium.transforms._common import (
    ExpansionError,
    expand_json,
    expand_replacement,
    header_bytes,
    infer_schema,
    java_regex,
    parse_replacement,
    without_field,
)
from cdcd.debezium.transforms.outbox_options import AdditionalField, OutboxOptions
from cdcd.debezium.types import TypeOptions, column_codec
from cdcd.debezium.types.row import RowConverter
from cdcd.decode.messages import LogicalMessage, TupleData
from cdcd.errors import CdcdError
from cdcd.source.tables import TableInfo
from cdcd.wire.lsn import format_lsn

MESSAGE_ID_NAMESPACE: Final = uuid.UUID("6f1d2c1e-8b3a-5f7e-9c4d-0a1b2c3d4e5f")
"""Namespace of the UUIDv5 ids given to messages without one: uuid5(ns, "<prefix>/<LSN>")."""

# The standard outbox table's schemas, which messages are given too.
_KEY_SCHEMA: Final = {"type": "string", "optional": False}
_ID_SCHEMA: Final = {"type": "string", "optional": False, "name": "io.debezium.data.Uuid", "version": 1}
_PAYLOAD_SCHEMA: Final = {"type": "string", "optional": True, "name": "io.debezium.data.Json", "version": 1}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TOPIC_OK: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")
# Timestamp schemas: divisor to milliseconds (ZonedTimestamp, an ISO string, is cdcd's extension).
_TS_DIVISOR: Final = {
    "io.debezium.time.Timestamp": 1, "org.apache.kafka.connect.data.Timestamp": 1,
    "io.debezium.time.MicroTimestamp": 1000, "io.debezium.time.NanoTimestamp": 1_000_000,
    "io.debezium.time.ZonedTimestamp": 0,
}


class OutboxError(CdcdError):
    """An outbox row or message lacks what the options name; the producer or the options must change."""


class OutboxRecord(namedtuple("OutboxRecord", (*Record._fields, "timestamp_ms", "partition"),  # noqa: PYI024
                              defaults=(*Record._field_defaults.values(), None, None))):
    """A ``Record``'s fields, then the Kafka timestamp and partition EventRouter may set (None: the producer's)."""

    __slots__ = ()
    key_fields = Record.key_fields


@dataclass(slots=True)
class _Event:
    """One outbox event, whichever variant it came from."""

    routed: str
    key: Any
    key_schema: dict[str, Any]
    event_id: Any
    payload: Any
    payload_schema: dict[str, Any]
    extras: list[tuple[AdditionalField, dict[str, Any], Any]] = field(default_factory=list)
    timestamp_ms: int | None = None
    schema_version: int | None = None
    value_name: str | None = None  # the name of the source's value struct (``<topic>.Value``)


@dataclass(slots=True)
class _TablePlan:
    image: RowConverter
    schemas: dict[str, dict[str, Any]]
    extras: list[AdditionalField]
    ts_divisor: int | None
    value_name: str


class OutboxRouter:
    """Turns outbox inserts and messages into routed ``OutboxRecord`` s; holds no I/O, only caches."""

    def __init__(self, options: OutboxOptions, envelope: EnvelopeOptions | None = None) -> None:
        """``envelope`` gives the topic prefix and type options, so columns convert as in change events."""
        self.options = options
        self._topic_prefix = envelope.topic_prefix if envelope is not None else ""
        self._type_options = envelope.type_options() if envelope is not None else TypeOptions()
        self._replace_null = envelope.replace_null_with_default if envelope is not None else True
        self._regex = java_regex(options.route_topic_regex, "route.topic.regex")
        self._replacement = parse_replacement(options.route_topic_replacement, self._regex, "route.topic.replacement")
        self._tables = [re.compile(java_regex(p, "table.include.list").pattern, re.IGNORECASE)
                        for p in options.table_include_list]
        self._envelope_fields = any(a.placement == "envelope" for a in options.table_fields_additional_placement)
        self._plans: dict[TableInfo, _TablePlan] = {}
        self._topics: dict[str, str] = {}
        self.expand_failures = 0
        """Payloads that ``table.expand.json.payload`` could not expand (kept as strings, as Debezium does)."""

    # --- which events are ours -----------------------------------------------------------

    def handles_table(self, table: TableInfo) -> bool:
        return self.handles_table_name(table.qualified_name)

    def handles_table_name(self, qualified_name: str) -> bool:
        return any(p.fullmatch(qualified_name) for p in self._tables)

    def handles_message(self, message: LogicalMessage) -> bool:
        return message.prefix == self.options.message_prefix

    # --- per operation -------------------------------------------------------------------

    def route_row(self, table: TableInfo, row: TupleData, source: SourceInfo) -> list[Record]:
        """An INSERT (or snapshot read) of an outbox row: one record. ``source`` is unused (Debezium's
        default record timestamp is the processing time, which the producer supplies)."""
        plan = self._plans.get(table) or self._plan(table)
        image = plan.image(row)
        o = self.options
        routed = image[o.route_by_field]
        if routed is None:
            raise OutboxError(f"outbox row in {table.qualified_name} has NULL {o.route_by_field}: "
                              "route.by.field must name a column that is always set")
        extras = [(a, plan.schemas[a.column], image[a.column]) for a in plan.extras]
        timestamp = None
        if plan.ts_divisor is not None and o.table_field_event_timestamp is not None:
            timestamp = _to_ms(image[o.table_field_event_timestamp], plan.ts_divisor)
        version = image[o.table_field_event_schema_version] if o.table_field_event_schema_version else None
        return [self._build(_Event(
            str(routed), image[o.table_field_event_key], plan.schemas[o.table_field_event_key],
            image[o.table_field_event_id], image[o.table_field_event_payload],
            plan.schemas[o.table_field_event_payload], extras, timestamp, version, plan.value_name,
        ))]

    def route_message(self, message: LogicalMessage, source: SourceInfo) -> list[Record]:
        """A message with this router's prefix: content ``{"aggregatetype", "aggregateid", "type",
        "payload", "id"?}`` (names per the table.field.* options) -> the record the table would give.

        Without an id the event gets ``uuid5(MESSAGE_ID_NAMESPACE, "<prefix>/<LSN>")``: a replay of the
        same WAL gives the same id, so consumers can still deduplicate.
        """
        if not self.handles_message(message):
            return []
        o = self.options
        where = f"outbox message at {format_lsn(message.lsn)} (prefix {message.prefix!r})"
        try:
            content = orjson.loads(message.content)
        except orjson.JSONDecodeError as exc:
            raise OutboxError(f"{where} is not JSON ({exc}): emit a JSON object, see cdcd.outbox_writer.emit") from None
        if not isinstance(content, dict):
            raise OutboxError(f"{where} is not a JSON object: emit a JSON object, see cdcd.outbox_writer.emit")
        for name, prop in ((o.route_by_field, "route.by.field"), (o.table_field_event_key, "table.field.event.key")):
            if content.get(name) is None:
                raise OutboxError(f"{where} has no {name!r} ({prop}): the producer must set it")
        payload = content.get(o.table_field_event_payload)
        event_id = content.get(o.table_field_event_id)
        if event_id is None:
            event_id = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{message.prefix}/{format_lsn(message.lsn)}"))
        standard: dict[str, dict[str, Any]] = {  # the standard columns' schemas; other keys: inferred
            o.table_field_event_id: _ID_SCHEMA, o.route_by_field: _KEY_SCHEMA, o.table_field_event_key: _KEY_SCHEMA,
            o.table_field_event_type: _KEY_SCHEMA, o.table_field_event_payload: _PAYLOAD_SCHEMA,
        }
        extras = []
        for extra in o.table_fields_additional_placement:
            if extra.column not in content:
                if o.table_fields_additional_error_on_missing:
                    raise OutboxError(f"{where} has no {extra.column!r} (table.fields.additional.placement)")
                continue
            value = content[extra.column]
            schema = standard.get(extra.column)
            if schema is None:
                schema = infer_schema(None, value) or {"type": "string", "optional": True}
            extras.append((extra, schema, value))
        timestamp = None
        if o.table_field_event_timestamp is not None:
            timestamp = _to_ms(content.get(o.table_field_event_timestamp), 1)
        version = content.get(o.table_field_event_schema_version) if o.table_field_event_schema_version else None
        return [self._build(_Event(
            _text(content[o.route_by_field]), _text(content[o.table_field_event_key]), dict(_KEY_SCHEMA),
            _text(event_id), None if payload is None else orjson.dumps(payload).decode(), dict(_PAYLOAD_SCHEMA),
            extras, timestamp, version if isinstance(version, int) else None,
        ))]

    def on_update(self, table: TableInfo) -> list[Record]:
        """Outbox rows are insert-only: nothing is emitted; the caller logs ``warning_for_update``
        at ``update_log_level``. With ``table.op.invalid.behavior=fatal`` this raises instead."""
        if self.options.table_op_invalid_behavior == "fatal":
            raise OutboxError(self.warning_for_update(table))
        return []

    def on_delete(self, table: TableInfo) -> list[Record]:
        """Deleting outbox rows (e.g. right after inserting them) is expected and emits nothing."""
        return []

    def on_truncate(self, table: TableInfo) -> list[Record]:
        """Truncating the outbox is housekeeping; it emits nothing."""
        return []

    def warning_for_update(self, table: TableInfo) -> str:
        return (f"UPDATE of outbox table {table.qualified_name} ignored: outbox rows are insert-only events "
                "(write a new row instead; table.op.invalid.behavior=fatal stops cdcd on this)")

    @property
    def update_log_level(self) -> str:
        return "error" if self.options.table_op_invalid_behavior == "error" else "warning"

    # --- building ------------------------------------------------------------------------

    def _plan(self, table: TableInfo) -> _TablePlan:
        o = self.options
        codecs = [column_codec(c, self._type_options, None, self._replace_null) for c in table.columns]
        schemas = {c.name: without_field(c.schema) for c in codecs}
        for column, prop in ((o.route_by_field, "route.by.field"), (o.table_field_event_key, "table.field.event.key"),
                             (o.table_field_event_id, "table.field.event.id"),
                             (o.table_field_event_payload, "table.field.event.payload"),
                             (o.table_field_event_timestamp, "table.field.event.timestamp"),
                             (o.table_field_event_schema_version, "table.field.event.schema.version")):
            if column is not None and column not in schemas:
                raise OutboxError(f"outbox table {table.qualified_name} has no column {column!r}: "
                                  f"set {prop} to the column that holds it")
        extras = []
        for extra in o.table_fields_additional_placement:
            if extra.column in schemas:
                extras.append(extra)
            elif o.table_fields_additional_error_on_missing:
                raise OutboxError(f"outbox table {table.qualified_name} has no column {extra.column!r} "
                                  "named in table.fields.additional.placement")
        divisor = None
        if o.table_field_event_timestamp is not None:
            ts_schema = schemas[o.table_field_event_timestamp]
            divisor = _TS_DIVISOR.get(ts_schema.get("name", ""))
            if divisor is None:
                raise OutboxError(f"table.field.event.timestamp: column {o.table_field_event_timestamp!r} of "
                                  f"{table.qualified_name} is {ts_schema.get('name') or ts_schema['type']}; "
                                  "use a timestamp or timestamptz column")
        plan = _TablePlan(
            RowConverter([(c, i) for i, c in enumerate(codecs)]), schemas, extras, divisor,
            sanitize_topic(f"{self._topic_prefix}.{table.schema}.{table.name}") + ".Value",
        )
        self._plans[table] = plan
        return plan

    def _build(self, ev: _Event) -> OutboxRecord:
        o = self.options
        headers: list[tuple[str, bytes]] = []
        event_id = header_bytes(ev.event_id)
        if event_id is not None:
            headers.append(("id", event_id))
        payload, payload_schema = ev.payload, ev.payload_schema
        if o.table_expand_json_payload and isinstance(payload, str):
            try:
                payload_schema, payload = expand_json(
                    o.table_field_event_payload, payload, o.table_json_payload_null_behavior == "optional_bytes")
            except ExpansionError:
                self.expand_failures += 1
        value_schema, value = payload_schema, payload
        value_fields: list[dict[str, Any]] = []
        if self._envelope_fields:
            value_fields = [{**payload_schema, "field": "payload"}]
            value = {"payload": payload}
        partition = None
        for extra, schema, extra_value in ev.extras:
            if extra.placement == "header":
                data = header_bytes(extra_value)
                if data is not None:  # Connect would send a null header; Record carries bytes only
                    headers.append((extra.alias, data))
            elif extra.placement == "envelope":
                value_fields.append({**schema, "field": extra.alias})
                value[extra.alias] = extra_value
            elif isinstance(extra_value, int):
                partition = extra_value
        if self._envelope_fields:
            value_schema = {"type": "struct", "fields": value_fields, "optional": False,
                            "name": _value_name(ev.value_name, ev.routed)}
            if ev.schema_version is not None:
                value_schema["version"] = ev.schema_version
        empty = ev.payload is None or (isinstance(ev.payload, str) and not ev.payload.strip())
        value_bytes = None if empty and o.route_tombstone_on_empty_payload else framed(head(value_schema), value)
        return OutboxRecord(
            self._topic(ev.routed), framed(head(ev.key_schema), ev.key), value_bytes,
            tuple(headers), timestamp_ms=ev.timestamp_ms, partition=partition,
        )

    def _topic(self, routed: str) -> str:
        topic = self._topics.get(routed)
        if topic is None:
            match = self._regex.fullmatch(routed)
            topic = expand_replacement(self._replacement, match) if match else routed  # RegexRouter
            if not _TOPIC_OK.fullmatch(topic):
                raise OutboxError(f"outbox event routed by {routed!r} would go to topic {topic!r}, which Kafka "
                                  "refuses: use [A-Za-z0-9._-] in route.by.field values or change "
                                  "route.topic.regex/route.topic.replacement")
            if len(self._topics) > 10_000:
                self._topics.clear()
            self._topics[routed] = topic
        return topic


def _value_name(source_name: str | None, routed: str) -> str:
    """EventRouter names the envelope ``<...>.<routed>.Value`` after the source's value struct."""
    if source_name is None:
        return routed  # a message has an unnamed struct in Debezium
    head, dot, tail = source_name.rpartition(".")
    return f"{head}.{routed}.{tail}" if dot else f"{routed}.{source_name}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _to_ms(value: Any, divisor: int) -> int | None:
    """A timestamp column's value (or a message's epoch-ms number / ISO string) in milliseconds."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise OutboxError(f"outbox event timestamp {value!r} is not an ISO-8601 timestamp") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OutboxError(f"outbox event timestamp {value!r} is neither epoch milliseconds nor ISO-8601")
    whole, d = int(value), max(divisor, 1)
    return whole // d if whole >= 0 else -(-whole // d)  # Java's long division truncates
