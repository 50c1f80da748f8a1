"""A JsonConverter payload value -> the datum fastavro writes for its Avro schema (pure).

Bytes arrive as base64 text, doubles may be Jackson's ``"NaN"``/``"Infinity"``, and every
value in a union is tagged ``(branch name, value)`` (fastavro's tuple notation) so that
fastavro writes the branch without first validating the value against each branch.
"""

from __future__ import annotations

import binascii
from typing import Any, Callable, Final

from cdcd.converters._avro_tree import Record

Datum = Callable[[Any], Any]
"""Turns a JSON payload value into fastavro's datum (may reuse and change it in place)."""


def identity(value: Any) -> Any:
    return value


_FLOAT_WORDS: Final = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def float_datum(value: Any) -> Any:
    return _FLOAT_WORDS.get(value, value) if isinstance(value, str) else value


def bytes_datum(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return binascii.a2b_base64(value)
        except binascii.Error as exc:
            raise ValueError(f"bytes value is not base64: {value[:40]!r}") from exc
    return value


def list_datum(item: Datum) -> Datum:
    def convert(value: Any) -> Any:
        return None if value is None else [item(v) for v in value]
    return convert


def map_datum(value_datum: Datum) -> Datum:
    def convert(value: Any) -> Any:
        return None if value is None else {k: value_datum(v) for k, v in value.items()}
    return convert


def entries_datum(key: Datum, value: Datum) -> Datum:
    """JsonConverter writes a map with non-string keys as ``[[k, v], ...]``."""
    def convert(data: Any) -> Any:
        if data is None:
            return None
        pairs = data.items() if isinstance(data, dict) else data
        return [{"key": key(k), "value": value(v)} for k, v in pairs]
    return convert


def record_datum(converters: list[tuple[str, str, Datum | None]]) -> Datum:
    def convert(row: Any) -> Any:
        if row is None:
            return None
        for name, avro_name, datum in converters:
            value = row.pop(name, None) if avro_name != name else row.get(name)
            row[avro_name] = value if datum is None or value is None else datum(value)
        return row
    return convert


def union_datum(branch: Any, datum: Datum | None) -> Datum:
    """A value in a union is tagged ``(branch name, value)`` (fastavro's tuple notation): fastavro then
    writes the branch without first validating the value against every branch, which is most of its time."""
    name = branch.full_name if isinstance(branch, Record) else branch.type
    if datum is None:
        def tagged(value: Any) -> Any:
            return None if value is None else (name, value)
        return tagged
    inner = datum

    def converted(value: Any) -> Any:
        return None if value is None else (name, inner(value))
    return converted
