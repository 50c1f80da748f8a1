"""Dates and times: date, time, timetz, timestamp, timestamptz, interval.

Parsed from PostgreSQL's ISO ``DateStyle`` output with integer calendar
arithmetic (proleptic Gregorian, astronomical years) rather than ``datetime``,
which cannot hold BC dates or years past 9999 — both of which PostgreSQL emits
(``0044-03-15 BC``, ``10000-01-01``). Offsets such as ``+05:30`` or the LMT
``-04:56:02`` are honoured even though cdcd runs its session in UTC.

``infinity``/``-infinity`` map to the constants Debezium derives from pgjdbc's
``DATE_POSITIVE_INFINITY`` (odd as the date ones look, they are what it emits);
for ``timestamptz`` they stay the strings ``infinity``/``-infinity``.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal
from typing import Any, Final

from cdcd.debezium.java import java_double
from cdcd.debezium.types._schema import FieldType, TypeOptions, native, plain

_US_PER_DAY: Final = 86_400_000_000
_DATE: Final = re.compile(r"(\d+)-(\d\d)-(\d\d)( BC)?")
_TIME: Final = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?")
_TIMETZ: Final = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?|Z)?")
_TIMESTAMP: Final = re.compile(
    r"(\d+)-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?"
    r"(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?|Z)?( BC)?"
)
_INTERVAL: Final = re.compile(
    r"(?:([+-]?\d+) years? ?)?(?:([+-]?\d+) mons? ?)?(?:([+-]?\d+) days? ?)?"
    r"(?:([+-])?(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?"
)

# Debezium: LocalDate.parse("-5877611-06-21") / ("-5877611-06-22") as epoch days.
DATE_POSITIVE_INFINITY: Final = -2147472692
DATE_NEGATIVE_INFINITY: Final = -2147472691
# pgjdbc DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY read as microseconds.
TIMESTAMP_POSITIVE_INFINITY_US: Final = 9223372036825200000
TIMESTAMP_NEGATIVE_INFINITY_US: Final = -9223372036832400000
_DAYS_PER_MONTH_AVG: Final = 365.25 / 12.0
_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1


def _long(v: int) -> int:
    """``v`` in Java's long arithmetic: wrapped to 64 bits."""
    return (v - _LONG_MIN) % (1 << 64) + _LONG_MIN


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (year 0 = 1 BC)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of ``days_from_civil``."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


GREGORIAN_CUTOVER_DAYS: Final = -141427
"""1582-10-15, where ``java.util.GregorianCalendar`` (and so ``java.sql.Date``/``Timestamp``) stops being Julian."""


def julian_days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a Julian-calendar date (astronomical year)."""
    a = (14 - m) // 12
    y2, m2 = y + 4800 - a, m + 12 * a - 3
    return d + (153 * m2 + 2) // 5 + 365 * y2 + y2 // 4 - 32083 - 2440588


def julian_civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of ``julian_days_from_civil``."""
    c = z + 2440588 + 32082
    d = (4 * c + 3) // 1461
    e = c - 1461 * d // 4
    m = (5 * e + 2) // 153
    return d - 4800 + m // 10, m + 3 - 12 * (m // 10), e - (153 * m + 2) // 5 + 1


def _frac_us(frac: str | None) -> int:
    return int((frac + "00000")[:6]) if frac else 0


def _offset_s(sign: str | None, hh: str | None, mm: str | None, ss: str | None) -> int:
    if sign is None:
        return 0
    seconds = int(hh or 0) * 3600 + int(mm or 0) * 60 + int(ss or 0)
    return -seconds if sign == "-" else seconds


def parse_date(text: str) -> int:
    """``2024-01-15`` / ``0044-03-15 BC`` / ``infinity`` to epoch days."""
    if text == "infinity":
        return DATE_POSITIVE_INFINITY
    if text == "-infinity":
        return DATE_NEGATIVE_INFINITY
    m = _DATE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a date: {text!r}")
    y = int(m.group(1))
    return days_from_civil(1 - y if m.group(4) else y, int(m.group(2)), int(m.group(3)))


def parse_time(text: str) -> int:
    """``13:45:30.123456`` (hour 24 allowed) to microseconds past midnight."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"not a time: {text!r}")
    return (int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)) * 1_000_000 + _frac_us(m.group(4))


def parse_timestamp(text: str) -> int:
    """A timestamp[tz] text to microseconds since the epoch (UTC when an offset is given)."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        raise ValueError(f"not a timestamp: {text!r}")
    (y, mo, d, hh, mi, ss, frac, sign, oh, om, os_, bc) = m.groups()
    year = int(y)
    days = days_from_civil(1 - year if bc else year, int(mo), int(d))
    secs = days * 86400 + int(hh or 0) * 3600 + int(mi or 0) * 60 + int(ss or 0)
    return (secs - _offset_s(sign, oh, om, os_)) * 1_000_000 + _frac_us(frac)


def _year(y: int) -> str:
    """``ISO_LOCAL_DATE`` years: 4 digits, a sign beyond 9999 or below 0."""
    if y > 9999:
        return f"+{y}"
    return f"{y:04d}" if y >= 0 else f"-{-y:04d}"


def _fraction(us: int, width: int) -> str:
    """Java's fraction: exactly ``width`` digits, or (width 0) as few as needed."""
    if width > 0:
        return "." + f"{us:06d}000"[:width]
    return "." + f"{us:06d}".rstrip("0") if us else ""


def format_utc(epoch_us: int, width: int) -> str:
    """``ZonedTimestamp.toIsoString`` of an instant at UTC."""
    days, rem = divmod(epoch_us, _US_PER_DAY)
    y, mo, d = civil_from_days(days)
    secs, us = divmod(rem, 1_000_000)
    clock = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return f"{_year(y)}-{mo:02d}-{d:02d}T{clock}{_fraction(us, width)}Z"


def _precision(typmod: int) -> int:
    return 6 if typmod < 0 else typmod


def date(options: TypeOptions) -> FieldType:
    name = "org.apache.kafka.connect.data.Date" if options.time_precision_mode == "connect" else "io.debezium.time.Date"
    return plain("int32", native(parse_date, "date"), 0, name=name, version=1)


def time(typmod: int, options: TypeOptions) -> FieldType:
    mode = options.time_precision_mode
    if mode == "connect" or (mode == "adaptive" and _precision(typmod) <= 3):
        name = "org.apache.kafka.connect.data.Time" if mode == "connect" else "io.debezium.time.Time"
        return plain("int32", native(lambda t: parse_time(t) // 1000, "time", 1000), 0, name=name, version=1)
    return plain("int64", native(parse_time, "time", 1), 0, name="io.debezium.time.MicroTime", version=1)


def _timestamp_us(text: str) -> int:
    if text == "infinity":
        return TIMESTAMP_POSITIVE_INFINITY_US
    if text == "-infinity":
        return TIMESTAMP_NEGATIVE_INFINITY_US
    return parse_timestamp(text)


def _micro_timestamp(text: str) -> int:
    """``MicroTimestamp``: the epoch microseconds as Debezium's ``Conversions.toEpochMicros`` computes them.

    Its ``TimeUnit.SECONDS.toMicros`` saturates at the long range and the microseconds of
    the second are then added in long arithmetic: a timestamp past 294247 AD (PostgreSQL
    goes to 294276) gives ``Long.MAX_VALUE`` (plus the fraction, wrapping), not a number
    beyond int64.
    """
    return saturated_micros(_timestamp_us(text))


def saturated_micros(us: int) -> int:
    """Epoch microseconds as ``Conversions.toEpochMicros`` gives them past the long range (see ``_micro_timestamp``)."""
    if _LONG_MIN <= us <= _LONG_MAX:
        return us
    secs, frac = divmod(us, 1_000_000)
    whole = min(max(secs * 1_000_000, _LONG_MIN), _LONG_MAX)
    return _long(whole + frac)


def timestamp(typmod: int, options: TypeOptions) -> FieldType:
    mode = options.time_precision_mode
    if mode == "connect" or _precision(typmod) <= 3:
        name = "org.apache.kafka.connect.data.Timestamp" if mode == "connect" else "io.debezium.time.Timestamp"
        return plain("int64", native(lambda t: _timestamp_us(t) // 1000, "timestamp", 1000), 0, name=name, version=1)
    return plain("int64", native(_micro_timestamp, "timestamp", 1), 0,
                 name="io.debezium.time.MicroTimestamp", version=1)


def timestamptz(typmod: int) -> FieldType:
    """``io.debezium.time.ZonedTimestamp``: UTC, exactly ``precision`` fraction digits (0: as needed)."""
    width = _precision(typmod)

    def convert(text: str) -> str:
        # Fast path: cdcd pins the walsender's TimeZone to UTC, so nearly every value
        # is "YYYY-MM-DD HH:MM:SS[.f]+00" and only needs rearranging, not date arithmetic.
        if text[-3:] == "+00" and len(text) >= 22 and text[4] == "-" and text[10] == " ":
            if width:
                frac = text[20:-3] if text[19] == "." else ""
                return f"{text[:10]}T{text[11:19]}.{(frac + '000000')[:width]}Z"
            return f"{text[:10]}T{text[11:-3]}Z"
        if text == "infinity" or text == "-infinity":
            return text
        return format_utc(parse_timestamp(text), width)
    if width <= 6:
        native(convert, "zoned", width)
    return plain("string", convert, "1970-01-01T00:00:00Z", name="io.debezium.time.ZonedTimestamp", version=1)


def zoned_time(text: str) -> str:
    """``io.debezium.time.ZonedTime``: shifted to UTC, ``ISO_OFFSET_TIME`` (minimal fraction); 24:00 wraps to 00:00."""
    m = _TIMETZ.fullmatch(text)
    if m is None:
        raise ValueError(f"not a timetz: {text!r}")
    hh, mi, ss, frac, sign, oh, om, os_ = m.groups()
    local = (int(hh) * 3600 + int(mi) * 60 + int(ss or 0)) * 1_000_000 + _frac_us(frac)
    offset = _offset_s(sign, oh, om, os_) * 1_000_000
    secs, us = divmod((local - offset) % _US_PER_DAY, 1_000_000)
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}{_fraction(us, 0)}Z"


def timetz() -> FieldType:
    return plain("string", native(zoned_time, "timetz"), "00:00:00Z", name="io.debezium.time.ZonedTime", version=1)


def _interval_parts(text: str) -> tuple[int, int, int, int, int, float, Decimal]:
    """IntervalStyle ``postgres`` text to pgjdbc ``PGInterval`` fields (seconds as its double)."""
    m = _INTERVAL.fullmatch(text.strip())
    if m is None or not text.strip():
        raise ValueError(f"not an interval in IntervalStyle postgres: {text!r}")
    years, months, days, sign, hh, mi, ss, frac = m.groups()
    neg = -1 if sign == "-" else 1
    whole, micros = int(ss or 0) * neg, _frac_us(frac) * neg
    exact = (Decimal(whole) + Decimal(micros).scaleb(-6))
    return (int(years or 0), int(months or 0), int(days or 0), int(hh or 0) * neg, int(mi or 0) * neg,
            whole + micros / 1e6, exact)


def interval_micros(text: str) -> int:
    """``MicroDuration.durationMicros``: months count 30.4375 days; the double arithmetic is Debezium's."""
    years, months, days, hours, minutes, seconds, _ = _interval_parts(text)
    number_of_days = (years * 12 + months) * _DAYS_PER_MONTH_AVG + days
    number_of_seconds = ((number_of_days * 24 + hours) * 60 + minutes) * 60 + seconds
    return java_long(number_of_seconds * 1e6)


def java_long(d: float) -> int:
    """Java's ``(long) d``: NaN is 0, values beyond the long range saturate."""
    if d != d:
        return 0
    if d >= 9.223372036854775807e18:
        return _LONG_MAX
    if d <= -9.223372036854775808e18:
        return _LONG_MIN
    return int(d)


_NANO: Final = Decimal("1e-9")


def interval_iso(text: str) -> str:
    """``Interval.toIsoString``: ``P<y>Y<m>M<d>DT<h>H<m>M<s>S`` without unit normalisation.

    The seconds are ``BigDecimal.valueOf(PGInterval.getSeconds())``: the double whole + µs / 1e6
    as ``Double.toString`` prints it, cut (not rounded) to 9 fraction digits, so ``04:32:03.381524``
    has 3.381523999 seconds (the double is 3.3815239999999998).
    """
    years, months, days, hours, minutes, seconds, _ = _interval_parts(text)
    value = Decimal(java_double(seconds))
    if value.as_tuple().exponent < -9:  # type: ignore[operator]
        value = value.quantize(_NANO, rounding=ROUND_DOWN)
    return f"P{years}Y{months}M{days}DT{hours}H{minutes}M{format(value.normalize(), 'f') if value else '0'}S"


def interval(options: TypeOptions) -> FieldType:
    if options.interval_handling_mode == "string":
        return plain("string", interval_iso, "P0Y0M0DT0H0M0S", name="io.debezium.time.Interval", version=1)
    return plain("int64", native(interval_micros, "interval"), 0, name="io.debezium.time.MicroDuration", version=1)


def default_text_converter(field: FieldType) -> Any:
    """Interval defaults: Debezium's generated placeholder ``epoch`` means a zero interval."""
    convert = field.convert

    def parse(text: str) -> Any:
        return field.zero if text == "epoch" else convert(text)
    return parse


def default_time_converter(field: FieldType) -> Any:
    """Time defaults: pgjdbc reads ``'24:00:00'`` as ``LocalTime.MAX`` (23:59:59.999999999).

    A streamed ``24:00:00`` value is a full day (86,400,000 ms), as Debezium converts it;
    the same text as a column default comes out one unit short (86,399,999 ms, or
    86,399,999,999 µs), because Debezium parses defaults with pgjdbc.
    """
    convert = field.convert

    def parse(text: str) -> Any:
        return convert("23:59:59.999999" if text == "24:00:00" else text)
    return parse


_LOCAL_DATE_MAX_DAY: Final = 365241780471  # LocalDate.MAX.toEpochDay()
_LOCAL_DATE_MIN_DAY: Final = -365243219162  # LocalDate.MIN.toEpochDay()


def default_infinity_converter(field: FieldType, type_name: str) -> Any:
    """date/timestamp/timestamptz defaults of ``'infinity'`` and ``'-infinity'``, as Debezium derives them.

    pgjdbc reads them as ``LocalDateTime``/``OffsetDateTime`` ``MAX`` and ``MIN``, and
    Debezium's converters then overflow: a date is the epoch day cast to an int, a
    ``MicroTimestamp`` the saturated microseconds plus the 999,999 µs of ``MAX`` in long
    arithmetic; every other representation throws, and the column has no default. Streamed
    and snapshot values of infinity are not affected (they have their own constants).
    """
    # A date default is pgjdbc's proleptic LocalDate even where the value itself goes through
    # java.sql.Date (a snapshot row of a date before 1582 is in the Julian calendar).
    convert = parse_date if type_name == "date" else field.convert

    def parse(text: str) -> Any:
        if text != "infinity" and text != "-infinity":
            return convert(text)
        positive = text == "infinity"
        if type_name == "date":
            day = _LOCAL_DATE_MAX_DAY if positive else _LOCAL_DATE_MIN_DAY
            return (day + (1 << 31)) % (1 << 32) - (1 << 31)
        if type_name == "timestamp" and field.name == "io.debezium.time.MicroTimestamp":
            return _long(_LONG_MAX + 999_999) if positive else _LONG_MIN
        raise ValueError(f"{text}: Debezium's conversion of it overflows")
    return parse
