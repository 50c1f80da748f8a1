"""Kafka Connect's JSON shapes: schema fields and the ``{"schema":S,"payload":P}`` frame.

Every record cdcd builds is what JsonConverter writes with ``schemas.enable=true``.
The schema of a topic's records rarely changes, so it is serialized once into a
*head*, ``{"schema":S,"payload":``, and a record is ``head + payload + b"}"``. The
converters cut the payload out again with the same head.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

SCHEMA_OPEN: Final = b'{"schema":'
PAYLOAD_OPEN: Final = b',"payload":'
CLOSE: Final = b"}"


def head(schema: Any) -> bytes:
    """``{"schema":<schema>,"payload":`` for a schema (a dict, None, or its JSON bytes already)."""
    return SCHEMA_OPEN + (schema if isinstance(schema, bytes) else orjson.dumps(schema)) + PAYLOAD_OPEN


def framed(head_: bytes, payload: Any) -> bytes:
    """One record: ``head_`` (from ``head``) and the payload serialized."""
    return head_ + orjson.dumps(payload) + CLOSE


def field(type_: str, optional: bool, name: str, /, **extra: Any) -> dict[str, Any]:
    """One field of a Connect struct schema, keys in the order JsonConverter writes them."""
    return {"type": type_, "optional": optional, **extra, "field": name}
