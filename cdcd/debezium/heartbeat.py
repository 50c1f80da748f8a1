"""Debezium's heartbeat records: topic ``<heartbeat prefix>.<topic.prefix>``, key serverName, value ts_ms.

Shaped as Debezium's ``SchemaFactory`` shapes them, with the JsonConverter's
``schemas.enable=true`` framing::

    key   {"serverName": "shop"}
    value {"ts_ms": 1795547161012}
"""

from __future__ import annotations

import time
from typing import Final

from cdcd.debezium.connect_json import field, framed, head
from cdcd.debezium.envelope import Record

_HEARTBEAT_KEY_HEAD: Final = head({
    "type": "struct", "fields": [field("string", False, "serverName")],
    "optional": False, "name": "io.debezium.connector.common.ServerNameKey", "version": 1,
})
_HEARTBEAT_VALUE_HEAD: Final = head({
    "type": "struct", "fields": [field("int64", False, "ts_ms")],
    "optional": False, "name": "io.debezium.connector.common.Heartbeat", "version": 1,
})


def heartbeat_record(topic_heartbeat_prefix: str, topic_prefix: str, now_ms: int | None = None) -> Record:
    """Debezium's heartbeat: topic ``<heartbeat prefix>.<topic.prefix>``, key serverName, value ts_ms."""
    ts_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return Record(f"{topic_heartbeat_prefix}.{topic_prefix}", framed(_HEARTBEAT_KEY_HEAD, {"serverName": topic_prefix}),
                  framed(_HEARTBEAT_VALUE_HEAD, {"ts_ms": ts_ms}))
