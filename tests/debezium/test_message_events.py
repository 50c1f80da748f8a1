"""Logical decoding message records: the content field in every ``binary.handling.mode``."""

from __future__ import annotations

import base64

import orjson
import pytest

from cdcd.debezium.envelope import SourceInfo
from cdcd.debezium.message_events import MessageEncoder

CONTENT = b"\xfb\xff\x00hi"


@pytest.mark.parametrize(("mode", "schema_type", "expected"), [
    ("bytes", "bytes", base64.b64encode(CONTENT).decode()),
    ("base64", "string", base64.b64encode(CONTENT).decode()),
    ("base64-url-safe", "string", base64.urlsafe_b64encode(CONTENT).decode()),  # Base64.getUrlEncoder(): -_ and padding
    ("hex", "string", CONTENT.hex()),
])
def test_message_content_follows_binary_handling_mode(mode: str, schema_type: str, expected: str) -> None:
    encoder = MessageEncoder("srv", "db", "3.6.3.Final", mode)
    record = encoder.record("audit", CONTENT, SourceInfo(1_000_000, 7, 100, None), None)
    value = orjson.loads(record.value)
    message_schema = next(f for f in value["schema"]["fields"] if f["field"] == "message")
    content_schema = next(f for f in message_schema["fields"] if f["field"] == "content")
    assert content_schema == {"type": schema_type, "optional": True, "field": "content"}
    assert value["payload"]["message"] == {"prefix": "audit", "content": expected}
    assert "-" in expected or "_" in expected or mode != "base64-url-safe"
