"""A column type's Kafka Connect schema paired with its value converter.

Every PostgreSQL type maps to one ``FieldType``: the schema JsonConverter would
print for it *and* the function that turns pgoutput's text output into the JSON
value that fits that schema. Keeping both in one frozen object is what stops the
schema and the payload from drifting apart (Debezium pairs ``schemaBuilder`` and
``converter`` the same way, across a 143-case switch we do not copy).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any, Callable, Final, Mapping

from cdcd.errors import ConfigError

Converter = Callable[[str], Any]
"""pgoutput text value -> JSON-ready value (str, int, float, bool, list, dict)."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Final = _Missing()
"""Marks "no constant default" (distinct from a default that is JSON null)."""


class Unrepresentable(ValueError):
    """A valid PostgreSQL value the chosen Connect type cannot hold (numeric NaN as Decimal).

    Raised by converters; the envelope then emits the column's NULL value, as
    Debezium can only fail the task in that case.
    """


DECIMAL_MODES: Final = ("precise", "double", "string")
TIME_MODES: Final = ("adaptive", "adaptive_time_microseconds", "connect")
BINARY_MODES: Final = ("bytes", "base64", "base64-url-safe", "hex")
INTERVAL_MODES: Final = ("numeric", "string")
HSTORE_MODES: Final = ("json", "map")


@dataclass(frozen=True, slots=True)
class TypeOptions:
    """The Debezium connector options that change schemas or values (same names, snake_case)."""

    decimal_handling_mode: str = "precise"
    time_precision_mode: str = "adaptive"
    binary_handling_mode: str = "bytes"
    interval_handling_mode: str = "numeric"
    hstore_handling_mode: str = "json"
    money_fraction_digits: int = 2
    unavailable_value_placeholder: str = "__debezium_unavailable_value"
    include_unknown_datatypes: bool = False
    snapshot_reads: bool = False
    """Values come from a snapshot's result set, where Debezium reads dates as ``java.sql.Date``."""

    def __post_init__(self) -> None:
        for name, allowed in (
            ("decimal_handling_mode", DECIMAL_MODES),
            ("time_precision_mode", TIME_MODES),
            ("binary_handling_mode", BINARY_MODES),
            ("interval_handling_mode", INTERVAL_MODES),
            ("hstore_handling_mode", HSTORE_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name}={getattr(self, name)!r} is not supported; use one of {', '.join(allowed)}"
                )

    @property
    def placeholder_text(self) -> str:
        """The placeholder as Debezium's string types carry it: ``new String(bytes)`` (``hex:414243`` is ``ABC``)."""
        return self.placeholder_bytes.decode("utf-8", "replace")

    @property
    def placeholder_bytes(self) -> bytes:
        """Debezium's ``hex:`` prefix means the placeholder is given as hex octets."""
        p = self.unavailable_value_placeholder
        if p.startswith("hex:"):
            return bytes.fromhex(p[4:])
        return p.encode("utf-8")


@dataclass(frozen=True, slots=True)
class FieldType:
    """One Connect type: the schema pieces, the converter, and its special values.

    ``zero`` is Debezium's fallback for a NULL in a NOT NULL column (old key-only
    images); ``unavailable`` the value for an unchanged TOAST column (``NO_DEFAULT``:
    none, treat like NULL); ``parse_default`` turns ``pg_get_expr`` text into the
    schema default or returns ``NO_DEFAULT``. ``items_optional`` is False for the
    arrays Debezium builds with required elements (enums, tsvector, unknown
    types): a NULL element then makes the whole array NULL. ``is_fallback``
    marks a type Debezium has no converter for (bytes with
    ``include.unknown.datatypes``); ``dropped`` one whose column Debezium leaves
    out of its events.
    """

    type: str
    convert: Converter
    zero: Any
    name: str | None = None
    version: int | None = None
    doc: str | None = None
    parameters: Mapping[str, str] | None = None
    fields: tuple[Mapping[str, Any], ...] | None = None
    items: FieldType | None = None
    map_schemas: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None
    unavailable: Any = NO_DEFAULT
    parse_default: Callable[[str], Any] | None = None
    is_fallback: bool = False
    items_optional: bool = True
    dropped: bool = False

    def schema(self, optional: bool, default: Any = NO_DEFAULT) -> dict[str, Any]:
        """The schema in JsonConverter's key order.

        type, fields|items|keys+values, optional, name, version, doc, parameters, default.
        """
        out: dict[str, Any] = {"type": self.type}
        if self.fields is not None:
            out["fields"] = [dict(f) for f in self.fields]
        if self.items is not None:
            out["items"] = self.items.schema(self.items_optional)
        if self.map_schemas is not None:
            out["keys"], out["values"] = dict(self.map_schemas[0]), dict(self.map_schemas[1])
        out["optional"] = optional
        if self.name is not None:
            out["name"] = self.name
        if self.version is not None:
            out["version"] = self.version
        if self.doc is not None:
            out["doc"] = self.doc
        if self.parameters is not None:
            out["parameters"] = dict(self.parameters)
        if default is not NO_DEFAULT:
            out["default"] = default
        return out


def b64(data: bytes) -> str:
    """Base64 as JsonConverter writes BYTES (standard alphabet, padded, no newline)."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def identity(text: str) -> str:
    return text


NATIVE_ATTR: Final = "_cdcd_native"


def native(convert: Converter, kind: str, param: Any = 0) -> Converter:
    """Mark ``convert`` as one the compiled core reproduces byte for byte (``cdcd.native``).

    ``kind`` names the compiled converter, ``param`` its argument (a scale, a
    divisor, a fraction width; for ``array`` the element converter and whether
    a NULL element makes the array NULL). A converter wrapped later (masking, truncation)
    loses the mark and so runs in Python, which keeps both cores identical.
    """
    setattr(convert, NATIVE_ATTR, (kind, param))
    return convert


def plain(
    type_: str,
    convert: Converter,
    zero: Any,
    *,
    name: str | None = None,
    version: int | None = None,
    parameters: Mapping[str, str] | None = None,
    unavailable: Any = NO_DEFAULT,
    parse_default: Callable[[str], Any] | None = None,
    is_fallback: bool = False,
) -> FieldType:
    """Shorthand for the common non-struct, non-array case."""
    return FieldType(
        type_, convert, zero, name=name, version=version, parameters=parameters,
        unavailable=unavailable, parse_default=parse_default, is_fallback=is_fallback,
    )
