"""What pgjdbc's ``java.sql`` objects make of temporal values, where Debezium reads them that way.

Debezium reads array elements (``PgArray``) and snapshot rows (JDBC result
sets) as ``java.sql.Date``/``Time``/``Timestamp``, built with
``java.util.GregorianCalendar``: fields before 1582-10-15 are Julian dates,
reading the fields back (``toLocalDate``, ``toLocalDateTime``) gives the year
of era (the BC era is lost), ``Time`` holds milliseconds and wraps 24:00 to
midnight, and pgjdbc's infinity sentinels are ordinary (far) dates. The
streamed scalar values, read from text, have none of this.
"""

from __future__ import annotations

from typing import Any, Callable, Final

from cdcd.debezium.types import temporal
from cdcd.debezium.types._schema import FieldType, native, plain

# pgjdbc's DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY as java.sql.Date, through
# toLocalDate() (292278994-08-16 and 292269055-12-02, era dropped) and a narrowing int cast.
DATE_POSITIVE_INFINITY: Final = -622191234
DATE_NEGATIVE_INFINITY: Final = -625821272



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


def date_days(text: str) -> int:
    """``java.sql.Date.toLocalDate()`` epoch days of a date text."""
    if text == "infinity":
        return DATE_POSITIVE_INFINITY
    if text == "-infinity":
        return DATE_NEGATIVE_INFINITY
    days = temporal.parse_date(text)
    if days >= temporal.GREGORIAN_CUTOVER_DAYS - 10 and not text.endswith(" BC"):
        return days if days >= temporal.GREGORIAN_CUTOVER_DAYS else days + 10  # the 1582 gap: lenient, 10 days on
    y, m, d = _hybrid_fields(_hybrid_days(*temporal.civil_from_days(days)))
    return temporal.days_from_civil(y, m, d)


native(date_days, "date_snapshot", temporal.GREGORIAN_CUTOVER_DAYS)  # the compiled core: Gregorian dates only


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
        return lambda text: temporal.saturated_micros(_hybrid_us(text))
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
        return temporal.format_utc(temporal.days_from_civil(y, m, d) * _US_PER_DAY + rest, width)
    return element


def _time_ms(text: str) -> int:
    return temporal.parse_time(text) // 1000 % _MS_PER_DAY  # java.sql.Time: milliseconds, 24:00 is 00:00


def _timetz_seconds(text: str) -> str:
    value = temporal.zoned_time(text)
    dot = value.find(".")
    return value if dot < 0 else value[:dot] + "Z"


def snapshot_date(scalar: FieldType) -> FieldType:
    """A ``date`` column read by a snapshot: Debezium gets a ``java.sql.Date`` from the result set."""
    return plain(scalar.type, date_days, scalar.zero, name=scalar.name, version=scalar.version)


def temporal_element(name: str, scalar: FieldType, typmod: int) -> FieldType:
    """The element type of a temporal array column (others are the scalar's)."""
    convert: Callable[[str], Any] | None = None
    if name == "date":
        convert = date_days
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
