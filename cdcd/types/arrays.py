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
from typing import Any, Callable, Final

from cdcd.types import temporal
from cdcd.types._schema import NO_DEFAULT, FieldType, TypeOptions, b64, plain

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
# pgjdbc's DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY as java.sql.Date, through
# toLocalDate() (292278994-08-16 and 292269055-12-02, era dropped) and a narrowing int cast.
DATE_ARRAY_POSITIVE_INFINITY: Final = -622191234
DATE_ARRAY_NEGATIVE_INFINITY: Final = -625821272


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
    return FieldType(
        "array", to_list, [], items=element, unavailable=toast_placeholder(element_name, element, options),
        is_fallback=element.is_fallback, items_optional=not required,
    )


def bit_array(element: FieldType) -> FieldType:
    """``bit(n)[]``: Debezium gives it ``bit(n)``'s schema and fails to convert every value (NULL)."""
    return FieldType(element.type, lambda text: None, None, name=element.name, version=element.version,
                     parameters=element.parameters)


# --- temporal elements: what java.sql.Date/Time/Timestamp make of the text -------------
# pgjdbc builds them with java.util.GregorianCalendar: fields before 1582-10-15 are Julian
# dates, and reading the fields back (toLocalDate, toLocalDateTime) gives the year of era.

_US_PER_DAY: Final = 86_400_000_000
_MS_PER_DAY: Final = 86_400_000
_CUTOVER: Final = (1582, 10, 15)


def _hybrid_days(year: int, month: int, day: int) -> int:
    """Epoch days of calendar fields as GregorianCalendar reads them (astronomical year)."""
    if (year, month, day) < _CUTOVER:
        return temporal.julian_days_from_civil(year, month, day)
    return temporal.days_from_civil(year, month, day)


def _hybrid_fields(days: int) -> tuple[int, int, int]:
    """Calendar fields of epoch days as GregorianCalendar shows them, with the year of era (BC era dropped)."""
    if days < temporal.GREGORIAN_CUTOVER_DAYS:
        y, m, d = temporal.julian_civil_from_days(days)
    else:
        y, m, d = temporal.civil_from_days(days)
    return (1 - y if y <= 0 else y), m, d


def _date_element(text: str) -> int:
    if text == "infinity":
        return DATE_ARRAY_POSITIVE_INFINITY
    if text == "-infinity":
        return DATE_ARRAY_NEGATIVE_INFINITY
    days = temporal.parse_date(text)
    if days >= temporal.GREGORIAN_CUTOVER_DAYS - 10 and not text.endswith(" BC"):
        return days if days >= temporal.GREGORIAN_CUTOVER_DAYS else days + 10  # the 1582 gap: lenient, 10 days on
    y, m, d = _hybrid_fields(_hybrid_days(*temporal.civil_from_days(days)))
    return temporal.days_from_civil(y, m, d)


def _hybrid_us(text: str) -> int:
    """A timestamp[tz] text to epoch µs as ``java.sql.Timestamp`` holds it (Julian before 1582-10-15)."""
    if text == "infinity":
        return temporal.TIMESTAMP_POSITIVE_INFINITY_US
    if text == "-infinity":
        return temporal.TIMESTAMP_NEGATIVE_INFINITY_US
    us = temporal.parse_timestamp(text)
    if us >= temporal.GREGORIAN_CUTOVER_DAYS * _US_PER_DAY:
        return us
    days, rest = divmod(us, _US_PER_DAY)
    return _hybrid_days(*temporal.civil_from_days(days)) * _US_PER_DAY + rest


def _timestamp_element(scalar: FieldType) -> Callable[[str], int]:
    if scalar.name == "io.debezium.time.MicroTimestamp":
        return _hybrid_us
    return lambda text: _hybrid_us(text) // 1000


def _timestamptz_element(scalar: FieldType, width: int) -> Callable[[str], str]:
    convert = scalar.convert
    fraction = "." + "0" * width if width else ""
    negative_infinity = f"+292269055-12-02T23:00:00{fraction}Z"  # pgjdbc's -infinity, era dropped

    def element(text: str) -> str:
        if text[:4] > "1582" and not text.endswith(" BC") or text == "infinity":
            return convert(text)
        if text == "-infinity":
            return negative_infinity
        days, rest = divmod(_hybrid_us(text), _US_PER_DAY)
        y, m, d = _hybrid_fields(days)
        gregorian = temporal.format_utc(temporal.days_from_civil(y, m, d) * _US_PER_DAY + rest, width)
        return gregorian
    return element


def _time_ms(text: str) -> int:
    return temporal.parse_time(text) // 1000 % _MS_PER_DAY  # java.sql.Time: milliseconds, 24:00 is 00:00


def _timetz_seconds(text: str) -> str:
    value = temporal.zoned_time(text)
    dot = value.find(".")
    return value if dot < 0 else value[:dot] + "Z"


def temporal_element(name: str, scalar: FieldType, typmod: int) -> FieldType:
    """The element type of a temporal array column (others are the scalar's)."""
    convert: Callable[[str], Any] | None = None
    if name == "date":
        convert = _date_element
    elif name == "time":
        convert = _time_ms if scalar.type == "int32" else (lambda t: _time_ms(t) * 1000)
    elif name == "timetz":
        convert = _timetz_seconds
    elif name == "timestamp":
        convert = _timestamp_element(scalar)
    elif name == "timestamptz":
        convert = _timestamptz_element(scalar, 6 if typmod < 0 else typmod)
    if convert is None:
        return scalar
    return plain(scalar.type, convert, scalar.zero, name=scalar.name, version=scalar.version)
