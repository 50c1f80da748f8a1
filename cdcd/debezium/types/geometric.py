"""Geometric types: ``point`` as Debezium's Point struct; the others only as unknown-type bytes.

``point`` is ``io.debezium.data.geometry.Point``: x, y, and a 2-D WKB point
(byte order mark 1, little-endian type 1 and coordinates), srid null.
``line``, ``lseg``, ``box``, ``path``, ``polygon`` and ``circle`` have no
Debezium converter: their columns are left out, or with
``include.unknown.datatypes`` carried as bytes of the text pgjdbc's
``PGline``/``PGbox``... print, which is PostgreSQL's text with every number
rewritten by Java's ``Double.toString`` (``(1,2)`` becomes ``(1.0,2.0)``).
"""

from __future__ import annotations

import re
import struct
from typing import Any, Final

from cdcd.debezium.java import java_double
from cdcd.debezium.types._schema import FieldType, b64

GEOMETRIC: Final = frozenset({"line", "lseg", "box", "path", "polygon", "circle"})
_NUMBER: Final = re.compile(r"-?(?:Infinity|NaN|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")
_POINT_FIELDS: Final = (
    {"type": "double", "optional": False, "field": "x"},
    {"type": "double", "optional": False, "field": "y"},
    {"type": "bytes", "optional": True, "field": "wkb"},
    {"type": "int32", "optional": True, "field": "srid"},
)


def _number(text: str) -> float:
    return float(text.replace("Infinity", "inf"))


def _json_double(d: float) -> float | str:
    """Jackson writes non-finite doubles as strings."""
    return d if d - d == 0 else ("NaN" if d != d else ("Infinity" if d > 0 else "-Infinity"))


def point_value(x: float, y: float) -> dict[str, Any]:
    return {"x": _json_double(x), "y": _json_double(y), "wkb": b64(struct.pack("<BIdd", 1, 1, x, y)), "srid": None}


def _point(text: str) -> dict[str, Any]:
    """``(1.5,2)`` to the Point struct."""
    numbers = _NUMBER.findall(text)
    if len(numbers) != 2:
        raise ValueError(f"not a point: {text!r}")
    return point_value(_number(numbers[0]), _number(numbers[1]))


def point() -> FieldType:
    return FieldType(
        "struct", _point, point_value(0.0, 0.0), name="io.debezium.data.geometry.Point", version=1,
        doc="Geometry (POINT)", fields=_POINT_FIELDS,
    )


def _java_number(match: re.Match[str]) -> str:
    return java_double(_number(match.group(0)))


def pgjdbc_text(text: str) -> str:
    """The text pgjdbc's geometric classes print back: each number as Java's ``Double.toString``."""
    return _NUMBER.sub(_java_number, text)
