"""Logical decoding message events (``op: "m"``), which belong to no table.

They are shaped exactly as Debezium's PostgreSQL connector shapes them (its
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

from cdcd.debezium.connect_json import CLOSE, field, framed, head
from cdcd.debezium.envelope import TRANSACTION_BLOCK_SCHEMA, Record
from cdcd.debezium.source_info import SOURCE_SCHEMA, SourceBlock, SourceInfo

_CONTENT_SCHEMA: Final = {
    "bytes": field("bytes", True, "content"),
    "base64": field("string", True, "content"),
    "base64-url-safe": field("string", True, "content"),
    "hex": field("string", True, "content"),
}

_MESSAGE_KEY_HEAD: Final = head({
    "type": "struct", "fields": [field("string", True, "prefix")],
    "optional": False, "name": "io.debezium.connector.postgresql.MessageKey", "version": 1,
})
_NO_TABLE: Final = SourceBlock.table("", "")

def _message_value_head(binary_handling_mode: str) -> bytes:
    return head({
        "type": "struct",
        "fields": [
            field("string", False, "op"),
            field("int64", True, "ts_ms"),
            SOURCE_SCHEMA,
            TRANSACTION_BLOCK_SCHEMA,
            {"type": "struct",
             "fields": [field("string", True, "prefix"), _CONTENT_SCHEMA[binary_handling_mode]],
             "optional": False, "name": "io.debezium.connector.postgresql.Message", "version": 1,
             "field": "message"},
        ],
        "optional": False, "name": "io.debezium.connector.postgresql.MessageValue", "version": 1,
    })


class MessageEncoder:
    """Builds ``op: "m"`` records for ``pg_logical_emit_message`` messages."""

    def __init__(self, topic_prefix: str, database: str, connector_version: str,
                 binary_handling_mode: str = "bytes") -> None:
        self.topic = f"{topic_prefix}.message"
        self._source = SourceBlock(connector_version, topic_prefix, database)
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
        """The message's ``source`` names no table (``schema`` and ``table`` are empty), as Debezium's."""
        value = b"".join((
            self._value_head, b'{"op":"m","ts_ms":', str(time.time_ns() // 1_000_000).encode(),
            b',"source":', self._source.json(source, _NO_TABLE).encode(),
            b',"transaction":', orjson.dumps(transaction),
            b',"message":', orjson.dumps({"prefix": prefix, "content": self._content(content)}), b"}", CLOSE,
        ))
        return Record(self.topic, framed(_MESSAGE_KEY_HEAD, {"prefix": prefix}), value, (), None, {"prefix": prefix},
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
