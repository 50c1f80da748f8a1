"""Text-like types: strings, uuid, json, xml, bytea, enums, hstore, and the string fallback.

PostgreSQL's text output of these types is already what Debezium emits, so most
converters are the identity. ``bytea`` arrives as ``\\x48656c6c6f`` (or the
``escape`` format) and follows ``binary.handling.mode``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final, Sequence

import orjson

from cdcd.types._java import hashmap_order
from cdcd.types._schema import FieldType, TypeOptions, b64, identity, plain

STRING_TYPES: Final = frozenset({
    "text", "varchar", "bpchar", "name", "char", "citext",
    "inet", "cidr", "macaddr", "macaddr8",
    "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "isbn",
})
_SEMANTIC: Final = {
    "uuid": "io.debezium.data.Uuid",
    "json": "io.debezium.data.Json",
    "jsonb": "io.debezium.data.Json",
    "xml": "io.debezium.data.Xml",
    "ltree": "io.debezium.data.Ltree",
}


def string(type_name: str, options: TypeOptions) -> FieldType:
    """A plain or semantic (``io.debezium.data.*``) string."""
    name = _SEMANTIC.get(type_name)
    return plain(
        "string", identity, "", name=name, version=1 if name else None,
        unavailable=options.unavailable_value_placeholder,
    )


def enum(values: Sequence[str] | None, options: TypeOptions) -> FieldType:
    """``io.debezium.data.Enum`` when the labels are known, else a plain string."""
    if values is None:
        return plain("string", identity, "", unavailable=options.unavailable_value_placeholder)
    return plain(
        "string", identity, "", name="io.debezium.data.Enum", version=1,
        parameters={"allowed": ",".join(values)}, unavailable=options.unavailable_value_placeholder,
    )


def fallback(options: TypeOptions) -> FieldType:
    """The documented fallback for types cdcd does not know: PostgreSQL's text form, as a string."""
    return plain(
        "string", identity, "", unavailable=options.unavailable_value_placeholder, is_fallback=True,
    )


# --- bytea -----------------------------------------------------------------------

def decode_bytea(text: str) -> bytes:
    """``bytea_output`` hex (``\\x0a0b``) or escape (``a\\012\\\\``) text to bytes."""
    if text.startswith("\\x"):
        return binascii.a2b_hex(text[2:])
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
        elif text[i + 1] == "\\":
            out.append(0x5C)
            i += 2
        else:
            out.append(int(text[i + 1:i + 4], 8))
            i += 4
    return bytes(out)


def bytea(options: TypeOptions) -> FieldType:
    mode = options.binary_handling_mode
    placeholder = options.placeholder_bytes
    if mode == "bytes":
        return plain("bytes", lambda t: b64(decode_bytea(t)), "", unavailable=b64(placeholder))
    if mode == "hex":
        return plain(
            "string", lambda t: decode_bytea(t).hex(), "", unavailable=options.unavailable_value_placeholder,
        )
    encode = base64.urlsafe_b64encode if mode == "base64-url-safe" else base64.b64encode
    return plain(
        "string", lambda t: encode(decode_bytea(t)).decode("ascii"), "",
        unavailable=options.unavailable_value_placeholder,
    )


# --- hstore ----------------------------------------------------------------------

def parse_hstore(text: str) -> dict[str, str | None]:
    """``"a"=>"1", "b"=>NULL`` to a dict (values may be NULL, keys may not)."""
    out: dict[str, str | None] = {}
    i, n = 0, len(text)

    def token(i: int) -> tuple[str | None, int]:
        while text[i] == " ":
            i += 1
        if text[i] == '"':
            buf = []
            i += 1
            while text[i] != '"':
                if text[i] == "\\":
                    i += 1
                buf.append(text[i])
                i += 1
            return "".join(buf), i + 1
        start = i
        while i < n and text[i] not in ",= ":
            i += 1
        word = text[start:i]
        return (None if word.upper() == "NULL" else word), i

    while i < n:
        if text[i] in ", ":
            i += 1
            continue
        key, i = token(i)
        while text[i] == " ":
            i += 1
        if text[i:i + 2] != "=>":
            raise ValueError(f"bad hstore text at {i}: {text!r}")
        value, i = token(i + 2)
        if key is None:
            raise ValueError("hstore key may not be NULL")
        out[key] = value
    return out


def _java_ordered(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: mapping[k] for k in hashmap_order(mapping)}


def hstore(options: TypeOptions) -> FieldType:
    """``hstore.handling.mode`` json (default: a JSON string) or map; keys in Java HashMap order."""
    placeholder = options.unavailable_value_placeholder
    if options.hstore_handling_mode == "json":
        def to_json(text: str) -> str:
            return orjson.dumps(_java_ordered(parse_hstore(text))).decode("utf-8")
        return plain(
            "string", to_json, "{}", name="io.debezium.data.Json", version=1,
            unavailable=orjson.dumps({placeholder: placeholder}).decode("utf-8"),
        )
    return FieldType(
        "map", lambda t: _java_ordered(parse_hstore(t)), {}, unavailable={placeholder: placeholder},
        map_schemas=({"type": "string", "optional": False}, {"type": "string", "optional": True}),
    )
