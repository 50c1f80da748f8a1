"""Kafka Connect's JsonConverter: with schemas (cdcd's native form) or the payload alone.

Every record cdcd builds is already JsonConverter with ``schemas.enable=true``:
``{"schema": S, "payload": P}``. With ``schemas.enable=false`` JsonConverter
writes ``P`` alone (``null`` for a null payload under an optional schema, no
bytes at all for a Kafka tombstone). The payload is cut out of the bytes
rather than re-serialized: records of one table version share the schema
prefix, so after one parse per prefix the cut is a ``startswith`` and a slice.
"""

from __future__ import annotations

from typing import Final

import orjson

from cdcd.debezium.connect_json import head as connect_head

_CACHE_LIMIT: Final = 4096


class JsonConverter:
    """``schemas.enable`` true: the record as it is; false: the payload's bytes."""

    def __init__(self, schemas_enable: bool = True) -> None:
        self.schemas_enable = schemas_enable
        self._heads: dict[str, bytes] = {}  # topic -> the last schema prefix seen on it

    def convert(self, topic: str, data: bytes | None) -> bytes | None:
        if data is None or self.schemas_enable:
            return data
        head = self._heads.get(topic)
        if head is not None and data.startswith(head) and data.endswith(b"}"):
            return data[len(head):-1]
        doc = orjson.loads(data)
        if not isinstance(doc, dict) or "payload" not in doc:
            return data  # not a Connect envelope: nothing to strip
        schema = doc.get("schema")
        head = connect_head(schema)
        if data.startswith(head) and data.endswith(b"}"):
            if len(self._heads) >= _CACHE_LIMIT:
                self._heads.clear()
            self._heads[topic] = head
            return data[len(head):-1]
        return orjson.dumps(doc["payload"])
