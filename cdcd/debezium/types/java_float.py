"""A ``real`` value as Debezium's JsonConverter prints it on Java 17: ``Float.toString``.

Kafka Connect writes a FLOAT32 field with Jackson, which prints ``Float.toString(f)``.
Up to Java 18 that method runs the classic free-format digit generation (Steele and
White), which stops on a symmetric half-ULP test, forces a second digit in E-notation,
and renders whole floats above 2^24 by rounding their integer value at a power of ten
that depends only on the exponent. Its output is sometimes longer than the shortest
decimal (``9.5300004E9`` for 9.53e9, ``1.17549435E-38``) or another one of the same
length (``1.4E-45`` for 1e-45). Java 19 and later print the shortest decimal instead.
The decimal *value* of that text is what a consumer reads, so this module produces the
digits and decimal exponent and returns the number they spell.

Debezium 3.6 supports Java 17 and later; cdcd follows Java 17, the oldest runtime and
the one its compatibility tests run against (docs/debezium-compatibility.md).
"""

from __future__ import annotations

import math
import struct
from typing import Final

_FRACT_HOB: Final = 1 << 52  # the hidden bit, in a double's position
_EXP_SHIFT: Final = 52
_N_5_BITS: Final = tuple(0 if i == 0 else (5 ** i).bit_length() for i in range(27))


def _n5(i: int) -> int:
    return _N_5_BITS[i] if i < len(_N_5_BITS) else i * 3


def _estimate_dec_exp(fract_bits: int, bin_exp: int) -> int:
    """floor(log10(value)), estimated from the mantissa and the binary exponent (may be one too high)."""
    d2 = 1.0 + (fract_bits & (_FRACT_HOB - 1)) / _FRACT_HOB
    d = (d2 - 1.5) * 0.289529654 + 0.176091259 + bin_exp * 0.301029995663981
    return math.floor(d)


def _long_digits(value: int, insignificant: int) -> tuple[str, int]:
    """Digits of a whole number, rounded half up at ``10^insignificant``; trailing zeros dropped."""
    dec_exp = 0
    if insignificant:
        pow10 = 10 ** insignificant
        value, residue = divmod(value, pow10)
        dec_exp = insignificant
        if residue >= pow10 >> 1:
            value += 1
    text = str(value)
    digits = text.rstrip("0")
    return digits, dec_exp + len(text)


def _roundup(digits: list[str], dec_exp: int) -> int:
    """Add one to the last digit, carrying; the decimal exponent (one higher on a carry out)."""
    i = len(digits) - 1
    while digits[i] == "9" and i > 0:
        digits[i] = "0"
        i -= 1
    if digits[i] == "9":
        digits[0] = "1"
        return dec_exp + 1
    digits[i] = chr(ord(digits[i]) + 1)
    return dec_exp


def _dtoa(bin_exp: int, fract_bits: int, significant_bits: int) -> tuple[str, int]:
    """Digits ``D`` and exponent ``E`` with value ``0.D × 10^E`` (the compatible format's rules)."""
    tail_zeros = (fract_bits & -fract_bits).bit_length() - 1
    fract_count = _EXP_SHIFT + 1 - tail_zeros
    tiny_bits = max(0, fract_count - bin_exp - 1)
    if -21 <= bin_exp <= 62 and tiny_bits < 27 and fract_count + _N_5_BITS[tiny_bits] < 64 and tiny_bits == 0:
        # A whole number that fits a long: its digits, rounded at a power of ten that only
        # the exponent decides (2^(binExp - significant bits - 1) has that many digits).
        p2 = bin_exp - significant_bits - 1
        insignificant = len(str(1 << p2)) - 1 if bin_exp > significant_bits and p2 > 1 else 0
        value = fract_bits << (bin_exp - _EXP_SHIFT) if bin_exp >= _EXP_SHIFT else fract_bits >> (_EXP_SHIFT - bin_exp)
        return _long_digits(value, insignificant)

    dec_exp = _estimate_dec_exp(fract_bits, bin_exp)
    b5 = max(0, -dec_exp)
    b2 = b5 + tiny_bits + bin_exp
    s5 = max(0, dec_exp)
    s2 = s5 + tiny_bits
    m5 = b5
    m2 = b2 - significant_bits
    fract_bits >>= tail_zeros
    b2 -= fract_count - 1
    common = min(b2, s2)
    b2 -= common
    s2 -= common
    m2 -= common
    if fract_count == 1:  # a power of two: the next lower float is half as far away
        m2 -= 1
    if m2 < 0:
        b2 -= m2
        s2 -= m2
        m2 = 0
    # Java computes in ints, longs or big integers, whichever the sizes allow. In ints and
    # longs ``b + m`` may overflow (``m`` grows tenfold per digit): the upper stop then fails
    # and the digit is not rounded up. Only a negative ``m`` is caught, as both stops.
    b_bits = fract_count + b2 + _n5(b5)
    ten_s_bits = s2 + 1 + _n5(s5 + 1)
    width = 32 if b_bits < 32 and ten_s_bits < 32 else 64 if b_bits < 64 and ten_s_bits < 64 else 0
    b = fract_bits * 5 ** b5 << b2
    s = 5 ** s5 << s2
    m = 5 ** m5 << m2
    tens = s * 10

    full = 1 << width if width else 0
    half = full >> 1
    digits: list[str] = []
    first = True
    while True:
        q, b = divmod(b, s)
        b *= 10
        m *= 10
        if width and m >= half:
            m = (m + half) % full - half
        if not width:
            low, high = b < m, b + m >= tens
        elif m <= 0:
            low = high = True
        else:
            low, high = b < m, ((b + m + half) % full - half) > tens
        if not first:
            digits.append(chr(48 + q))
        else:
            first = False
            if q == 0 and not high:
                dec_exp -= 1  # the estimate was one too high: drop the leading zero
            else:
                digits.append(chr(48 + q))
            if dec_exp < -3 or dec_exp >= 8:  # E-notation prints at least one digit after the point
                low = high = False
        if low or high:
            break
    difference = (b << 1) - tens
    if width:
        difference = (difference + half) % full - half
    dec_exp += 1
    if high and (not low or difference > 0 or (difference == 0 and int(digits[-1]) & 1)):
        dec_exp = _roundup(digits, dec_exp)
    return "".join(digits), dec_exp


def java_float_value(value: float) -> float:
    """The number ``Float.toString`` (Java 17) writes for ``value`` rounded to a float, read as a double."""
    if value != value or value in (math.inf, -math.inf) or value == 0.0:
        return value
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    negative = bits >> 31
    fraction = bits & 0x7FFFFF
    bin_exp = (bits >> 23) & 0xFF
    if bin_exp == 0:  # subnormal: normalise the fraction
        shift = 24 - fraction.bit_length()
        significant = fraction.bit_length()
        fraction <<= shift
        bin_exp = 1 - shift
    else:
        fraction |= 1 << 23
        significant = 24
    digits, dec_exp = _dtoa(bin_exp - 127, fraction << (_EXP_SHIFT - 23), significant)
    number = float(f"0.{digits}e{dec_exp}")
    return -number if negative else number
