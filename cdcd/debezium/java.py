"""Java behaviours that leak into Debezium's output and that we must reproduce.

``java.util.HashMap`` iteration order decides the order of keys in hstore JSON
and of ``data_collections`` in transaction END events; it depends only on
``String.hashCode`` and the table capacity, so it can be computed exactly.
Column masking needs ``String.length()``/``substring`` (UTF-16 code units) and
``ObjectOutputStream`` bytes of a string (``column.mask.hash`` version 1).
"""

from __future__ import annotations

from typing import Iterable, TypeVar

T = TypeVar("T")


def string_hash(s: str) -> int:
    """``String.hashCode()`` over UTF-16 code units, as an unsigned 32-bit int."""
    h = 0
    data = s.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] | data[i + 1] << 8)) & 0xFFFFFFFF
    return h


def hashmap_order(keys: Iterable[str]) -> list[str]:
    """The iteration order of a ``HashMap<String, ?>`` filled with ``keys`` in this order.

    Buckets are visited in index order; within a bucket, entries keep insertion
    order (resizes split buckets without reordering). Treeified buckets (8+
    colliding keys) are not modelled.
    """
    unique = list(dict.fromkeys(keys))
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2
    mask = capacity - 1

    def bucket(item: tuple[int, str]) -> tuple[int, int]:
        h = string_hash(item[1])
        return ((h ^ (h >> 16)) & mask, item[0])

    return [k for _, k in sorted(enumerate(unique), key=bucket)]


def _utf16_units(s: str) -> list[int]:
    data = s.encode("utf-16-le", "surrogatepass")
    return [data[i] | data[i + 1] << 8 for i in range(0, len(data), 2)]


def java_length(s: str) -> int:
    """``String.length()``: UTF-16 code units."""
    return len(s) if s.isascii() else len(s.encode("utf-16-le", "surrogatepass")) // 2


def java_prefix(s: str, n: int) -> str:
    """``s.substring(0, n)`` when longer; a pair split in half loses its high surrogate."""
    if len(s) <= n and s.isascii():
        return s
    data = s.encode("utf-16-le", "surrogatepass")
    if len(data) <= 2 * n:
        return s
    return data[:2 * n].decode("utf-16-le", "ignore")


def java_serialized_string(s: str) -> bytes:
    """``ObjectOutputStream.writeObject(s)`` bytes: stream header, then TC_STRING (modified UTF-8)."""
    body = bytearray()
    for unit in _utf16_units(s):
        if 0 < unit < 0x80:
            body.append(unit)
        elif unit < 0x800:
            body += bytes((0xC0 | unit >> 6, 0x80 | unit & 0x3F))
        else:
            body += bytes((0xE0 | unit >> 12, 0x80 | unit >> 6 & 0x3F, 0x80 | unit & 0x3F))
    if len(body) <= 0xFFFF:
        return b"\xac\xed\x00\x05\x74" + len(body).to_bytes(2, "big") + bytes(body)
    return b"\xac\xed\x00\x05\x7c" + len(body).to_bytes(8, "big") + bytes(body)


def java_hex_char(unit: int) -> str:
    """``Integer.toHexString(c)`` padded as Debezium's UnicodeReplacementFunction does (``00`` only below 0x100)."""
    text = format(unit, "x")
    return "00" + text if len(text) <= 2 else text


def java_double(d: float) -> str:
    """``Double.toString(d)``: shortest digits; plain in [1e-3, 1e7), else ``d.dddE±n``."""
    if d != d:
        return "NaN"
    if d in (float("inf"), float("-inf")):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if str(d).startswith("-") else "0.0"
    sign = "-" if d < 0 else ""
    mantissa, _, exp_text = repr(abs(d)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    exponent = int(exp_text or 0) + len(whole.lstrip("0")) - 1 if whole.strip("0") else \
        int(exp_text or 0) - (len(frac) - len(frac.lstrip("0"))) - 1
    digits = digits.rstrip("0") or "0"
    if 1e-3 <= abs(d) < 1e7:
        if exponent >= 0:
            head = digits[:exponent + 1].ljust(exponent + 1, "0")
            return f"{sign}{head}.{digits[exponent + 1:] or '0'}"
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"
