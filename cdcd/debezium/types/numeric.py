"""Numbers and booleans: int2/int4/int8/oid, float4/float8, numeric, money, bool, bit/varbit.

Values arrive as PostgreSQL's text output. Special floats (``NaN``,
``Infinity``, ``-Infinity``) become those exact strings because Kafka's
JsonConverter (Jackson, ``WRITE_NAN_AS_STRINGS``) writes them quoted; orjson
would write ``null``. ``numeric`` follows ``decimal.handling.mode``:

* precise: ``org.apache.kafka.connect.data.Decimal`` (base64 of the unscaled
  two's-complement big-endian integer), or ``io.debezium.data.VariableScaleDecimal``
  when the column has no precision; NaN/Infinity raise ``Unrepresentable``
  (Debezium fails the task; we emit the column's NULL value instead);
* double: Connect FLOAT64; string: ``BigDecimal.toPlainString()`` (never scientific).

JsonConverter names FLOAT32/FLOAT64 ``float``/``double`` in a schema; the enum
names ``float32``/``float64`` are rejected by every Connect consumer.
"""

from __future__ import annotations

import functools
from binascii import b2a_base64 as _b2a
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Final

from cdcd.debezium.types._schema import FieldType, TypeOptions, Unrepresentable, b64, native, plain
from cdcd.debezium.types.java_float import java_float_value

_SPECIAL: Final = frozenset({"NaN", "Infinity", "-Infinity"})
# BigDecimal arithmetic is exact: a context wide enough for any PostgreSQL numeric (131072 + 16383 digits).
_EXACT: Final = Context(prec=200_000, Emax=MAX_EMAX, Emin=MIN_EMIN)
_DECIMAL_NAME: Final = "org.apache.kafka.connect.data.Decimal"
_VSD_NAME: Final = "io.debezium.data.VariableScaleDecimal"
# numeric string mode: Debezium prints SpecialValueDecimal's enum names.
_SPECIAL_STRING: Final = {"NaN": "NAN", "Infinity": "POSITIVE_INFINITY", "-Infinity": "NEGATIVE_INFINITY"}


def unscaled_bytes(n: int) -> bytes:
    """``BigInteger.toByteArray()``: minimal two's-complement, big-endian."""
    return n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "big", signed=True)


def to_float(text: str) -> float | str:
    """float4/float8 text -> float, keeping NaN/Infinity as Jackson's strings."""
    last = text[-1]
    if last == "N" or last == "y":  # NaN, Infinity, -Infinity
        return text
    return float(text)


@functools.lru_cache(maxsize=1 << 16)
def float4_value(text: str) -> float | str:
    """float4 text -> the number Debezium's JsonConverter prints for it (``java_float``); NaN/Infinity as strings.

    Java's digit generation costs about 10 µs in Python; the values of a real column
    repeat often enough that a cache of the last 65,536 texts keeps that off most rows.
    """
    value = to_float(text)
    if isinstance(value, str):
        return value
    try:
        return java_float_value(value)
    except OverflowError:  # beyond a float's range (not from PostgreSQL): Float.parseFloat gives Infinity
        return "Infinity" if value > 0 else "-Infinity"


def to_bool(text: str) -> bool:
    return text == "t" or text == "T" or text.lower() == "true"


def integer(type_name: str) -> FieldType:
    connect = {"int2": "int16", "int4": "int32", "int8": "int64", "oid": "int64"}[type_name]
    return plain(connect, int, 0)


def floating(type_name: str) -> FieldType:
    if type_name == "float4":
        return plain("float", native(float4_value, "float4"), 0.0)
    return plain("double", native(to_float, "float"), 0.0)


def boolean() -> FieldType:
    return plain("boolean", to_bool, False)


# --- numeric ---------------------------------------------------------------------

def _scaled(text: str, scale: int) -> int:
    """The unscaled integer of ``text`` at ``scale`` (``BigDecimal.setScale``)."""
    dot = text.find(".")
    frac = len(text) - dot - 1 if dot >= 0 else 0
    if "e" not in text and "E" not in text:
        if frac == scale:
            return int(text.replace(".", "", 1)) if dot >= 0 else int(text)
        if frac < scale:
            return int(text.replace(".", "", 1) if dot >= 0 else text) * 10 ** (scale - frac)
    value = Decimal(text).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN, context=_EXACT)
    return int(value.scaleb(scale, context=_EXACT))


def _check_special(text: str) -> None:
    if text in _SPECIAL:
        raise Unrepresentable(f"numeric {text} cannot be a Connect Decimal; use decimal.handling.mode=string or double")


def _variable_scale(text: str) -> dict[str, Any]:
    """``stripTrailingZeros`` then a non-negative scale, as Debezium builds the struct."""
    _check_special(text)
    if "e" in text or "E" in text:
        d = Decimal(text).normalize()
        sign, digits, exp = d.as_tuple()
        assert isinstance(exp, int)
        n = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        if exp > 0:
            n, exp = n * 10**exp, 0
        return {"scale": -exp, "value": b64(unscaled_bytes(n))}
    ip, _, fp = text.partition(".")
    fp = fp.rstrip("0")
    n = int(ip + fp) if fp else int(ip)
    return {"scale": len(fp) if n else 0, "value": b64(unscaled_bytes(n))}


def numeric(typmod: int, options: TypeOptions) -> FieldType:
    """``numeric(p,s)`` (typmod = ((p << 16) | s) + 4) or unconstrained ``numeric`` (typmod -1)."""
    variable = typmod < 4
    precision = ((typmod - 4) >> 16) & 0xFFFF if not variable else 0
    # pgjdbc's getScale: a negative scale (PG 15, stored as 11-bit two's complement) reads as
    # 2048 + scale, and Debezium uses that (numeric(5,-2) values get 2046 zero fraction digits).
    scale = (typmod - 4) & 0xFFFF if not variable else 0
    mode = options.decimal_handling_mode
    if mode == "double":
        def to_double(text: str) -> float | str:
            return text if text in _SPECIAL else float(Decimal(text))
        return plain("double", native(to_double, "float"), 0.0)  # float(Decimal(t)) == float(t): both exact
    if mode == "string":
        quantum = None if variable else Decimal(1).scaleb(-scale)

        def to_string(text: str) -> str:
            special = _SPECIAL_STRING.get(text)
            if special is not None:
                return special
            d = Decimal(text)
            return format(d if quantum is None else d.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_EXACT), "f")
        zero = "0" if variable else format(Decimal(0).quantize(Decimal(1).scaleb(-scale), context=_EXACT), "f")
        return plain("string", native(to_string, "decimal_text", -1 if variable else scale), zero)
    if variable:
        return FieldType(
            "struct", native(_variable_scale, "decimal_var"), {"scale": 0, "value": b64(b"\x00")},
            name=_VSD_NAME, version=1, doc="Variable scaled decimal",
            fields=(
                {"type": "int32", "optional": False, "field": "scale"},
                {"type": "bytes", "optional": False, "field": "value"},
            ),
        )
    eff_scale = scale

    def to_decimal(text: str) -> str:
        # Fast path: PostgreSQL prints numeric(p,s) with exactly s fraction digits.
        dot = text.find(".")
        if dot > 0 and len(text) - dot - 1 == eff_scale:
            n = int(text[:dot] + text[dot + 1:])
        else:
            _check_special(text)
            n = _scaled(text, eff_scale)
        return _b2a(n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "big", signed=True), newline=False).decode("ascii")
    return plain(
        "bytes", native(to_decimal, "decimal", eff_scale), b64(b"\x00"), name=_DECIMAL_NAME, version=1,
        parameters={"scale": str(eff_scale), "connect.decimal.precision": str(precision)},
    )


def money(options: TypeOptions) -> FieldType:
    """``money`` text is locale-formatted (``$1,234.56``, ``-$1,234.56``, ``($1.00)``)."""
    digits = options.money_fraction_digits
    quantum = Decimal(1).scaleb(-digits)

    def exact(text: str) -> Decimal:
        negative = "-" in text or "(" in text
        cleaned = "".join(c for c in text if c.isdigit() or c == ".")
        try:
            value = Decimal(cleaned)
        except InvalidOperation as exc:
            raise ValueError(text) from exc
        return -value if negative else value

    def parse(text: str) -> Decimal:
        return exact(text).quantize(quantum, rounding=ROUND_HALF_UP)

    # money.fraction.digits rounds only the precise Decimal; double and string carry the value as
    # PostgreSQL prints it (Debezium's convertMoney), only their zero fallback has the configured scale
    mode = options.decimal_handling_mode
    if mode == "double":
        return plain("double", lambda t: float(exact(t)), 0.0)
    if mode == "string":
        return plain("string", lambda t: format(exact(t), "f"), format(Decimal(0).quantize(quantum), "f"))
    return plain(
        "bytes", lambda t: b64(unscaled_bytes(int(parse(t).scaleb(digits)))), b64(b"\x00"),
        name=_DECIMAL_NAME, version=1, parameters={"scale": str(digits)},
    )


# --- bit strings -----------------------------------------------------------------

def _bits_to_bytes(text: str) -> str:
    """``B'101'`` -> little-endian bytes sized to the highest set bit (Debezium's BitSet path)."""
    n = int(text, 2) if text else 0
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "little"))


def bits(type_name: str, typmod: int) -> FieldType:
    """``bit(1)``/``varbit(1)`` are booleans; longer bit strings ``io.debezium.data.Bits``."""
    length = typmod if typmod > 0 else (1 if type_name == "bit" else 2147483647)
    if length == 1:
        # Integer.valueOf(text, 2): an empty varbit(1) cannot be read (NULL value, no default)
        return plain("boolean", lambda t: int(t, 2) != 0, False)
    return plain(
        "bytes", _bits_to_bytes, b64(b""), name="io.debezium.data.Bits", version=1,
        parameters={"length": str(length)},
    )
