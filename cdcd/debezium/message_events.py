"""Events that belong to no table: logical decoding messages and heartbeats.

Both are shaped exactly as Debezium's PostgreSQL connector shapes them (its
``PostgresSchemaFactory`` and ``SchemaFactory``), with the JsonConverter's
``schemas.enable=true`` framing. Schemas are serialized once at import.

A message event (``op: "m"``, topic ``<prefix>.message``)::

    key   {"prefix": "audit"}
    value {"op": "m", "ts_ms": ..., "source": {..., "schema": "", "table": "", "txId": 756,
           "lsn": 26997904}, "transaction": null,
           "message": {"prefix": "audit", "content": "<base64>"}}
"""

from __future__ import annotations

import base64
import time
from typing import Any, Final

import orjson

from cdcd.debezium.envelope import SOURCE_SCHEMA, TRANSACTION_BLOCK_SCHEMA, Record, SourceInfo

_CONTENT_SCHEMA: Final = {
    "bytes": {"type": "bytes", "optional": True, "field": "content"},
    "base64": {"type": "string", "optional": True, "field": "content"},
    "base64-url-safe": {"type": "string", "optional": True, "field": "content"},
    "hex": {"type": "string", "optional": True, "field": "content"},
}

_MESSAGE_KEY_HEAD: Final = b'{"schema":' + orjson.dumps({
    "type": "struct", "fields": [{"type": "string", "optional": True, "field": "prefix"}],
    "optional": False, "name": "io.debezium.connector.postgresql.MessageKey", "version": 1,
}) + b',"payload":'

_HEARTBEAT_KEY_SCHEMA: Final = orjson.dumps({
    "type": "struct", "fields": [{"type": "string", "optional": False, "field": "serverName"}],
    "optional": False, "name": "io.debezium.connector.common.ServerNameKey", "version": 1,
})
_HEARTBEAT_VALUE_HEAD: Final = b'{"schema":' + orjson.dumps({
    "type": "struct", "fields": [{"type": "int64", "optional": False, "field": "ts_ms"}],
    "optional": False, "name": "io.debezium.connector.common.Heartbeat", "version": 1,
}) + b',"payload":'


def _message_value_head(binary_handling_mode: str) -> bytes:
    return b'{"schema":' + orjson.dumps({
        "type": "struct",
        "fields": [
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
            SOURCE_SCHEMA,
            TRANSACTION_BLOCK_SCHEMA,
            {"type": "struct",
             "fields": [{"type": "string", "optional": True, "field": "prefix"},
                        _CONTENT_SCHEMA[binary_handling_mode]],
             "optional": False, "name": "io.debezium.connector.postgresql.Message", "version": 1,
             "field": "message"},
        ],
        "optional": False, "name": "io.debezium.connector.postgresql.MessageValue", "version": 1,
    }) + b',"payload":'


class MessageEncoder:
    """Builds ``op: "m"`` records for ``pg_logical_emit_message`` messages."""

    def __init__(self, topic_prefix: str, database: str, connector_version: str,
                 binary_handling_mode: str = "bytes") -> None:
        self.topic = f"{topic_prefix}.message"
        self._name = topic_prefix
        self._db = database
        self._version = connector_version
        self._binary = binary_handling_mode
        self._value_head = _message_value_head(binary_handling_mode)

    def _content(self, content: bytes) -> str:
        if self._binary == "hex":
            return content.hex()
        if self._binary == "base64-url-safe":
            return base64.urlsafe_b64encode(content).decode()
        return base64.b64encode(content).decode()

    def record(self, prefix: str, content: bytes, source: SourceInfo,
               transaction: dict[str, Any] | None) -> Record:
        ts_ms = source.ts_us // 1000
        source_payload = {
            "version": self._version, "connector": "postgresql", "name": self._name, "ts_ms": ts_ms,
            "snapshot": "false", "db": self._db,
            "sequence": orjson.dumps([None if source.last_commit_lsn is None else str(source.last_commit_lsn),
                                      str(source.lsn)]).decode(),
            "ts_us": source.ts_us, "ts_ns": source.ts_us * 1000, "schema": "", "table": "",
            "txId": source.txid, "lsn": source.lsn, "xmin": None,
            "origin": source.origin, "origin_lsn": source.origin_lsn,
        }
        payload = {"op": "m", "ts_ms": time.time_ns() // 1_000_000, "source": source_payload,
                   "transaction": transaction, "message": {"prefix": prefix, "content": self._content(content)}}
        key = _MESSAGE_KEY_HEAD + orjson.dumps({"prefix": prefix}) + b"}"
        return Record(self.topic, key, self._value_head + orjson.dumps(payload) + b"}", (), None, {"prefix": prefix},
                      source.lsn, source.txid)


_MESSAGE_ID_CLASS: Final = "io.debezium.connector.postgresql.LogicalDecodingMessageMonitor$LogicalDecodingMessageId"


def message_data_collection(lsn: int) -> str:
    """The name a message counts under in transaction metadata, one per message as in Debezium.

    Debezium uses a new ``LogicalDecodingMessageId`` per message, so END lists each
    message as its own data collection named by ``Object.toString()``: the class, ``@``
    and an identity hash. That hash is random in the JVM; here it is a 31-bit mix of the
    message's LSN (same shape, stable across replays).
    """
    h = (lsn * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    h = ((h ^ (h >> 29)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    h = (h ^ (h >> 32)) & 0x7FFFFFFF
    return f"{_MESSAGE_ID_CLASS}@{h or 1:x}"


def heartbeat_record(topic_heartbeat_prefix: str, topic_prefix: str, now_ms: int | None = None) -> Record:
    """Debezium's heartbeat: topic ``<heartbeat prefix>.<topic.prefix>``, key serverName, value ts_ms."""
    ts_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    key = b'{"schema":' + _HEARTBEAT_KEY_SCHEMA + b',"payload":' + orjson.dumps({"serverName": topic_prefix}) + b"}"
    value = _HEARTBEAT_VALUE_HEAD + orjson.dumps({"ts_ms": ts_ms}) + b"}"
    return Record(f"{topic_heartbeat_prefix}.{topic_prefix}", key, value)
