"""One-dimensional arrays: PostgreSQL's ``{a,"b c",NULL}`` text to a JSON list.

Debezium supports arrays of most scalar types; the element schema is the
scalar's, always optional. Two details come from pgjdbc: an array column
without a type modifier has scale 0, so ``timestamp[]`` elements are
millisecond ``io.debezium.time.Timestamp`` values and ``timestamptz[]``
elements print as few fraction digits as needed; and an unchanged-TOAST array
is replaced by a placeholder shaped like the element type. Multi-dimensional
values have no Connect schema here and raise ``ValueError``.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Final

from cdcd.types._schema import NO_DEFAULT, FieldType, TypeOptions, b64
from cdcd.types.numeric import unscaled_bytes

# Element types Debezium has array schemas for (PostgresValueConverter).
SUPPORTED_ELEMENTS: Final = frozenset({
    "int2", "int4", "int8", "oid", "char", "varchar", "text", "bpchar", "citext",
    "inet", "cidr", "macaddr", "macaddr8",
    "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange",
    "numeric", "float4", "float8", "bool", "date", "uuid", "json", "jsonb",
    "time", "timetz", "timestamp", "timestamptz", "bytea", "hstore", "ltree",
})
TIME_ELEMENTS: Final = frozenset({"time", "timetz", "timestamp", "timestamptz"})


def parse_array(text: str) -> list[str | None]:
    """``array_out`` text to element texts (None for NULL)."""
    if text[0] == "[":  # non-default lower bound: "[0:2]={1,2,3}"
        text = text[text.index("=") + 1:]
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        raise ValueError(f"not an array: {text!r}")
    body = text[1:-1]
    if not body:
        return []
    if "{" in body and body.lstrip()[0] == "{":
        raise ValueError("multi-dimensional arrays have no Connect schema")
    if '"' not in body:
        return [None if e == "NULL" else e for e in body.split(",")]
    out: list[str | None] = []
    i, n = 0, len(body)
    while i < n:
        if body[i] == '"':
            buf = []
            i += 1
            while body[i] != '"':
                if body[i] == "\\":
                    i += 1
                buf.append(body[i])
                i += 1
            out.append("".join(buf))
            i += 1
        else:
            j = body.find(",", i)
            j = n if j < 0 else j
            token = body[i:j]
            out.append(None if token == "NULL" else token)
            i = j
        i += 1  # the delimiter
    return out


def _signed(b: int) -> int:
    return b - 256 if b > 127 else b


def toast_placeholder(element: FieldType, options: TypeOptions) -> Any:
    """Debezium's ``UnchangedToastedPlaceholder.getArrayValue``: the placeholder in the element's type."""
    raw = options.placeholder_bytes
    kind, name = element.type, element.name
    if kind == "string":
        if name == "io.debezium.data.Uuid":
            return [str(uuid.UUID(bytes=hashlib.md5(raw).digest(), version=3))]
        return [options.unavailable_value_placeholder]
    if kind == "bytes":
        if name == "org.apache.kafka.connect.data.Decimal":
            return [b64(unscaled_bytes(_signed(b))) for b in raw]
        return [b64(raw)]
    if kind in ("int16", "int32", "int64"):
        return [_signed(b) for b in raw]
    if kind in ("float", "double"):
        return [float(_signed(b)) for b in raw]
    if kind == "boolean":
        return [b != 0 for b in raw]
    if name == "io.debezium.data.VariableScaleDecimal":
        return [{"scale": 0, "value": b64(unscaled_bytes(_signed(b)))} for b in raw]
    return NO_DEFAULT


def array_of(element: FieldType, options: TypeOptions) -> FieldType:
    convert = element.convert

    def to_list(text: str) -> list[Any]:
        return [None if e is None else convert(e) for e in parse_array(text)]
    return FieldType(
        "array", to_list, [], items=element, unavailable=toast_placeholder(element, options),
        is_fallback=element.is_fallback,
    )
