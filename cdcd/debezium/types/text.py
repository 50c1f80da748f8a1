"""Text-like types: strings, uuid, json, xml, tsvector, bytea, enums, hstore, and unknown types.

PostgreSQL's text output of these types is already what Debezium emits, so most
converters are the identity. ``bytea`` arrives as ``\\x48656c6c6f`` (or the
``escape`` format) and follows ``binary.handling.mode``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from typing import Any, Callable, Final, Sequence

import orjson

from cdcd.debezium.java import hashmap_order
from cdcd.debezium.types._schema import FieldType, TypeOptions, b64, identity, native, plain
from cdcd.debezium.types.geometric import GEOMETRIC, pgjdbc_text

STRING_TYPES: Final = frozenset({
    "text", "varchar", "bpchar", "char", "citext",
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
        unavailable=options.placeholder_text,
    )


def enum(values: Sequence[str] | None, options: TypeOptions) -> FieldType:
    """``io.debezium.data.Enum`` when the labels are known, else a plain string."""
    if values is None:
        return plain("string", identity, "", unavailable=options.placeholder_text)
    return plain(
        "string", identity, "", name="io.debezium.data.Enum", version=1,
        parameters={"allowed": ",".join(values)}, unavailable=options.placeholder_text,
    )


def enum_default(type_name: str, expr: str) -> str | None:
    """Debezium's ``extractEnumDefault``: the quoted label of ``'ok'::mood`` (or ``::schema.mood``), else None."""
    cast = expr.rfind("::")
    if cast < 0:
        return None
    suffix = expr[cast + 2:].replace('"', "")
    if suffix.rpartition(".")[2] != type_name:
        return None
    value = expr[:cast]
    return value[1:-1] if len(value) >= 2 and value[0] == "'" and value[-1] == "'" else None


def tsvector(options: TypeOptions) -> FieldType:
    return plain(
        "string", identity, "", name="io.debezium.data.Tsvector", version=1,
        unavailable=options.placeholder_text,
    )


# Extension types Debezium has converters for (PostGIS structs, pgvector arrays) that cdcd does
# not reproduce: their PostgreSQL text, so no data is lost (docs/debezium-compatibility.md).
EXTENSION_TYPES: Final = frozenset({"geometry", "geography", "vector", "halfvec", "sparsevec"})


def extension_text(options: TypeOptions) -> FieldType:
    return plain("string", identity, "", unavailable=options.placeholder_text, is_fallback=True)


def name_type(options: TypeOptions, *, required: bool = False) -> FieldType:
    """``name``: a string schema (JDBC VARCHAR), but Debezium's pgoutput decoder has no reader for it, so
    a streamed value is NULL unless ``include.unknown.datatypes`` hands the text through (snapshots read it);
    in a NOT NULL column that NULL becomes the string's fallback ``""``, as Debezium's converter does."""
    missing = "" if required else None
    convert = identity if options.include_unknown_datatypes or options.snapshot_reads else (lambda text: missing)
    return plain("string", convert, "", unavailable=options.placeholder_text)


def int2vector() -> FieldType:
    """``int2vector``: Debezium's schema is an array of required int16, and every value it emits is empty."""
    return FieldType("array", lambda text: [], [], items=plain("int16", int, 0), items_optional=False)


DROPPED: Final = FieldType("string", identity, None, is_fallback=True, dropped=True)
"""A type Debezium has no converter for: its column is left out of the events."""


def unknown(type_name: str, options: TypeOptions) -> FieldType:
    """``include.unknown.datatypes``: bytes of the text form (pgjdbc's for geometric types), else ``DROPPED``."""
    if type_name in EXTENSION_TYPES:
        return extension_text(options)
    if not options.include_unknown_datatypes:
        return DROPPED
    if type_name in GEOMETRIC:
        return replace(binary(options, lambda t: pgjdbc_text(t).encode("utf-8")), is_fallback=True)
    return replace(binary(options, lambda t: t.encode("utf-8")), is_fallback=True)


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


def binary(options: TypeOptions, to_bytes: Callable[[str], bytes]) -> FieldType:
    """A binary value in ``binary.handling.mode``: bytes (base64 in JSON), or a base64/base64-url-safe/hex string."""
    mode = options.binary_handling_mode
    if mode == "bytes":
        return plain("bytes", lambda t: b64(to_bytes(t)), "", unavailable=b64(options.placeholder_bytes))
    if mode == "hex":
        return plain("string", lambda t: to_bytes(t).hex(), "", unavailable=options.placeholder_text)
    encode = base64.urlsafe_b64encode if mode == "base64-url-safe" else base64.b64encode
    # No unchanged-TOAST placeholder: Debezium's base64 converters get its marker object and emit NULL.
    return plain("string", lambda t: encode(to_bytes(t)).decode("ascii"), "")


def bytea(options: TypeOptions) -> FieldType:
    field = binary(options, decode_bytea)
    mode = options.binary_handling_mode
    return replace(field, convert=native(field.convert, "bytea", 2 if mode == "hex" else int(mode == "base64-url-safe")))


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
    placeholder = options.placeholder_text
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
