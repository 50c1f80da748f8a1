"""Kafka's StringConverter and ByteArrayConverter, on cdcd's JsonConverter-with-schemas records.

``org.apache.kafka.connect.storage.StringConverter`` writes ``value.toString()`` of the
Connect data: a string as it is (an outbox key), a number or boolean as Java prints
it, a struct as ``Struct{id=1,name=x}`` (null fields left out), a list as ``[a, b]``,
a map as ``{k=v}`` in ``HashMap`` order, a Decimal as ``BigDecimal.toString()``.
Two Java renderings cannot be reproduced and differ: ``byte[]`` (Java prints an
identity hash such as ``[B@1b6d3586``; cdcd writes the base64 text) and
``java.util.Date`` values of Connect's Date/Time/Timestamp (printed in UTC).

``org.apache.kafka.connect.converters.ByteArrayConverter`` writes a bytes payload
as it is and refuses any other schema type, as Kafka's does.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
from decimal import Decimal
from typing import Any

import orjson

from cdcd.debezium.java import hashmap_order
from cdcd.errors import SinkError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_DATES = ("org.apache.kafka.connect.data.Date", "org.apache.kafka.connect.data.Time",
          "org.apache.kafka.connect.data.Timestamp")


def _split(topic: str, data: bytes) -> tuple[dict[str, Any] | None, Any]:
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or "payload" not in doc:
        raise SinkError(f"a record for topic {topic} is not a Connect record: cannot convert it")
    schema = doc.get("schema")
    return schema if isinstance(schema, dict) else None, doc["payload"]


def _shortest_float32(value: float) -> str:
    """The fewest significant digits that read back as the same float32 (what Float.toString prints)."""
    bits = struct.pack("<f", value)
    exact = struct.unpack("<f", bits)[0]
    for digits in range(1, 10):
        text = f"{exact:.{digits}g}"
        if struct.pack("<f", float(text)) == bits:
            return text
    return repr(exact)


def java_double(value: float, single: bool = False) -> str:
    """``Double.toString`` / ``Float.toString`` (shortest digits, as JDK 19+ prints them)."""
    if single:
        try:
            value = struct.unpack("<f", struct.pack("<f", value))[0]
        except OverflowError:  # beyond Float.MAX_VALUE: Java's (float) cast gives Infinity
            value = math.copysign(math.inf, value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    text = _shortest_float32(value) if single else repr(value)
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        if "e" in text:
            text = f"{Decimal(text):f}"
        return text if "." in text else text + ".0"
    mantissa, _, exponent = f"{Decimal(text):E}".partition("E")
    digits = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    if "." not in digits:
        # Java prints at least one fractional digit: the closest two-digit value, not a padded zero
        mantissa, _, exponent = f"{value:.1E}".partition("E")
        digits = mantissa
    return f"{digits}E{int(exponent)}"


def java_string(schema: dict[str, Any] | None, value: Any) -> str:
    """``toString()`` of the Connect value JsonConverter builds from this JSON."""
    if value is None:
        return "null"
    name = schema.get("name") if schema else None
    type_ = schema.get("type") if schema else None
    if name == _DECIMAL:
        unscaled = int.from_bytes(base64.b64decode(value), "big", signed=True)
        return str(Decimal(unscaled).scaleb(-int((schema or {}).get("parameters", {}).get("scale", 0))))
    if name in _DATES:
        moment = _EPOCH + dt.timedelta(days=value) if name.endswith("Date") else \
            _EPOCH + dt.timedelta(milliseconds=value)
        return moment.strftime("%a %b %d %H:%M:%S UTC %Y")
    if type_ == "struct" and isinstance(value, dict):
        fields = (schema or {}).get("fields", ())
        return "Struct{" + ",".join(f"{f['field']}={java_string(f, value.get(f['field']))}" for f in fields
                                    if value.get(f["field"]) is not None) + "}"
    if type_ == "array" and isinstance(value, list):
        items = (schema or {}).get("items")
        return "[" + ", ".join(java_string(items, v) for v in value) + "]"
    if type_ == "map":
        keys, values = (schema or {}).get("keys"), (schema or {}).get("values")
        pairs = list(value.items()) if isinstance(value, dict) else [tuple(p) for p in value]
        if pairs and all(isinstance(k, str) for k, _ in pairs):
            lookup = dict(pairs)
            pairs = [(k, lookup[k]) for k in hashmap_order(lookup)]
        return "{" + ", ".join(f"{java_string(keys, k)}={java_string(values, v)}" for k, v in pairs) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if type_ in ("float", "float32", "double", "float64") or isinstance(value, float):
        number = float(value) if not isinstance(value, str) else {"NaN": math.nan, "Infinity": math.inf,
                                                                   "-Infinity": -math.inf}.get(value, 0.0)
        return java_double(number, type_ in ("float", "float32"))
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


class StringConverter:
    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    def convert(self, topic: str, data: bytes | None) -> bytes | None:
        if data is None:
            return None
        schema, payload = _split(topic, data)
        if payload is None:
            return None
        return java_string(schema, payload).encode(self.encoding)


class ByteArrayConverter:
    def convert(self, topic: str, data: bytes | None) -> bytes | None:
        if data is None:
            return None
        schema, payload = _split(topic, data)
        if schema is not None and schema.get("type") != "bytes":
            raise SinkError(f"topic {topic}: ByteArrayConverter takes only bytes, not a {schema.get('type')} "
                            "schema (Kafka Connect refuses it too); choose another converter for this side")
        if payload is None:
            return None
        return base64.b64decode(payload) if isinstance(payload, str) else bytes(payload)
