"""Arrays: PostgreSQL's ``{a,"b c",NULL}`` text to a JSON list, shaped as Debezium shapes each array type.

Debezium (``PostgresValueConverter``) reads arrays through pgjdbc's ``PgArray``,
and that shows in its output; what it emits, checked against Debezium 3.6.3:

* the array types it lists (``OPTIONAL_ELEMENTS``) have optional elements with
  the scalar's schema, scale taken from the column (``timestamp[]`` elements are
  ``MicroTimestamp`` in adaptive mode, ``timestamptz[]`` ones print six fraction
  digits);
* elements arrive as ``java.sql`` objects: ``time[]`` values keep milliseconds
  only (``24:00`` is midnight), ``timetz[]`` values whole seconds; dates before
  1582-10-15 are Julian-calendar dates (a ``timestamp[]`` element of 44 BC is two
  days off the proleptic Gregorian instant), ``date[]`` and ``timestamptz[]``
  elements lose the BC era (``0044-03-15 BC`` becomes 44-03-15), and ``date[]``
  ``infinity``/``-infinity`` become dates in the years 292278994 / 292269055
  (pgjdbc's sentinels) whose epoch days overflow an int;
* enums, ``tsvector`` and ``isbn`` arrays have *required* elements: an array
  holding a NULL fails Connect's validation, and Debezium emits NULL for the
  whole value;
* ``money[]``, ``name[]``, ``interval[]``, ``varbit[]``, ``xml[]`` and
  ``point[]`` columns are left out, always; arrays of other types Debezium does
  not know (domains, geometric types) too, unless ``include.unknown.datatypes``,
  which makes them arrays of required bytes (each element's text);
* ``bit(n)[]`` has the schema of ``bit(n)`` and always the value NULL;
* a multi-dimensional array becomes a list of NULLs, one per sub-array.

An unchanged-TOAST array is Debezium's placeholder list for text, json(b), varchar,
bpchar, bytea (bytes mode), int4, date, int8 and uuid arrays, else NULL.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from typing import Any, Final

from cdcd.debezium.types._schema import NATIVE_ATTR, NO_DEFAULT, FieldType, TypeOptions, Unrepresentable, b64, native

# Array types with Debezium schemas of optional elements (PostgresValueConverter's PgOid cases
# plus citext, hstore and ltree arrays).
OPTIONAL_ELEMENTS: Final = frozenset({
    "int2", "int4", "int8", "oid", "char", "varchar", "text", "bpchar", "citext",
    "inet", "cidr", "macaddr", "macaddr8",
    "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange",
    "numeric", "float4", "float8", "bool", "date", "uuid", "json", "jsonb",
    "time", "timetz", "timestamp", "timestamptz", "bytea", "hstore", "ltree",
})
# Element types whose array Debezium builds from the element's own schema, required.
REQUIRED_ELEMENTS: Final = frozenset({"tsvector", "isbn"})
# Array types Debezium has an explicit "no schema" for: the column is always left out.
NEVER_EMITTED: Final = frozenset({"money", "name", "interval", "varbit", "xml", "point", "refcursor"})


def _outer_length(body: str) -> int:
    """How many top-level elements a multi-dimensional array body has."""
    depth, count, quoted, i = 0, 1, False, 0
    while i < len(body):
        c = body[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            count += 1
        i += 1
    return count


def parse_array(text: str) -> list[str | None]:
    """``array_out`` text to element texts (None for NULL); a multi-dimensional array to one None per sub-array."""
    if text[0] == "[":  # non-default lower bound: "[0:2]={1,2,3}"
        text = text[text.index("=") + 1:]
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        raise ValueError(f"not an array: {text!r}")
    body = text[1:-1]
    if not body:
        return []
    if body[0] == "{":
        return [None] * _outer_length(body)
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


# Array types Debezium has an unchanged-TOAST placeholder for (UnchangedToastedReplicationMessageColumn);
# any other array gets the placeholder string, which Connect refuses for an array: the value is NULL.
_TEXT_PLACEHOLDER: Final = frozenset({"text", "varchar", "bpchar", "json", "jsonb"})
_NUMBER_PLACEHOLDER: Final = frozenset({"int4", "date", "int8"})


def toast_placeholder(element_name: str, element: FieldType, options: TypeOptions) -> Any:
    """Debezium's placeholder for an unchanged-TOAST array of ``element_name``, or ``NO_DEFAULT`` (NULL)."""
    raw = options.placeholder_bytes
    if element_name in _TEXT_PLACEHOLDER:
        return [options.placeholder_text]
    if element_name in _NUMBER_PLACEHOLDER:
        return [_signed(b) for b in raw]
    if element_name == "uuid":
        return [str(uuid.UUID(bytes=hashlib.md5(raw).digest(), version=3))]
    if element_name == "bytea" and element.type == "bytes":
        return [b64(raw)]  # a list of byte[]: only the bytes schema accepts it
    return NO_DEFAULT


def array_of(element: FieldType, options: TypeOptions, *, required: bool = False, element_name: str = "") -> FieldType:
    """An array of ``element``; with ``required`` elements a NULL element makes the value NULL."""
    convert = element.convert
    if required:
        def to_list(text: str) -> list[Any] | None:
            items = parse_array(text)
            return None if None in items else [convert(e) for e in items]  # type: ignore[arg-type]
    else:
        def to_list(text: str) -> list[Any] | None:
            return [None if e is None else convert(e) for e in parse_array(text)]
    native(to_list, "array", (convert, required))
    return FieldType(
        "array", to_list, [], items=element, unavailable=toast_placeholder(element_name, element, options),
        is_fallback=element.is_fallback, items_optional=not required,
    )


def numeric_element(element: FieldType) -> FieldType:
    """``numeric[]`` elements: pgjdbc cannot read NaN/Infinity as a BigDecimal, so Debezium emits NULL for the array."""
    convert = element.convert

    def checked(text: str) -> Any:
        if text[-1] == "N" or text[-1] == "y":  # NaN, Infinity, -Infinity
            raise Unrepresentable(f"numeric[] element {text}: Debezium emits NULL for the array")
        return convert(text)
    if hasattr(convert, NATIVE_ATTR):
        # The compiled numeric writers take digits only: a NaN or infinite element sends the
        # whole array to this function, which makes it NULL.
        native(checked, *getattr(convert, NATIVE_ATTR))
    return replace(element, convert=checked)


def bit_array(element: FieldType) -> FieldType:
    """``bit(n)[]``: Debezium gives it ``bit(n)``'s schema and fails to convert every value (NULL)."""
    return FieldType(element.type, lambda text: None, None, name=element.name, version=element.version,
                     parameters=element.parameters)

