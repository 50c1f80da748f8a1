"""Source column metadata as Debezium sees it: JDBC type family, length and scale.

Debezium's column mappers (``column.propagate.source.type``, ``column.mask.*``,
``column.truncate.*``) look at the column's JDBC type and its length and scale.
For a streamed table these come from the pgoutput Relation message through
pgjdbc's ``TypeInfoCache`` (``getPrecision``/``getScale``/``getDisplaySize``):
with a type modifier, length = ``getPrecision(oid, typmod)``; without one,
``getPrecision`` or, when that is 0, ``getDisplaySize``. Arrays use their
element's numbers; unknown types (enums, extensions) have pgjdbc's
``unknownLength`` (``Integer.MAX_VALUE``) and scale 0. Domains are approximated
by their base type with the column's modifier.
"""

from __future__ import annotations

from typing import Final

from cdcd.source.tables import ColumnInfo

UNKNOWN_LENGTH: Final = 2_147_483_647
"""pgjdbc's default ``unknownLength``."""

# java.sql.Types CHAR/VARCHAR in pgjdbc: the types MaskStrings and hashing apply to.
_CHARACTER_TYPES: Final = frozenset({"text", "varchar", "bpchar", "char", "name"})
_FIXED_PRECISION: Final = {"int2": 5, "int4": 10, "oid": 10, "int8": 19, "float4": 8, "float8": 17,
                           "char": 1, "bool": 1}
_TEMPORAL: Final = frozenset({"date", "time", "timetz", "timestamp", "timestamptz", "interval"})


def _element_name(column: ColumnInfo) -> str:
    name = column.type_name
    if column.type_kind == "d" and column.base_type_name:
        return column.base_type_name
    if name.startswith("_") and column.base_type_name:
        return column.base_type_name  # convertArrayToBaseOid
    return name


def is_character(column: ColumnInfo) -> bool:
    """True for columns whose JDBC type is CHAR or VARCHAR (text types and enums; not arrays, json, uuid)."""
    if column.type_kind == "e":
        return True
    if column.type_name.startswith("_"):
        return False
    return _element_name(column) in _CHARACTER_TYPES


def _display_size(name: str, typmod: int) -> int:
    if name == "date":
        return 13
    if name in ("time", "timetz", "timestamp", "timestamptz"):
        second = {-1: 7, 0: 0, 1: 3}.get(typmod, typmod + 1)
        return {"time": 8, "timetz": 14, "timestamp": 22, "timestamptz": 28}[name] + second
    if name == "interval":
        return 49
    if name == "numeric":
        if typmod == -1:
            return 131089
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        return 1 + precision + (1 if scale else 0)
    if name in ("int2", "int4", "oid", "int8", "float4", "float8"):
        return {"int2": 6, "int4": 11, "oid": 10, "int8": 20, "float4": 15, "float8": 25}[name]
    if name in ("char", "bool"):
        return 1
    return _precision(name, typmod)


def _precision(name: str, typmod: int) -> int:
    fixed = _FIXED_PRECISION.get(name)
    if fixed is not None:
        return fixed
    if name == "numeric":
        return 0 if typmod == -1 else ((typmod - 4) >> 16) & 0xFFFF
    if name in ("bpchar", "varchar"):
        return UNKNOWN_LENGTH if typmod == -1 else typmod - 4
    if name in _TEMPORAL:
        return _display_size(name, typmod)
    if name == "bit":
        return typmod
    if name == "varbit":
        return UNKNOWN_LENGTH if typmod == -1 else typmod
    return UNKNOWN_LENGTH


def _scale(name: str, typmod: int) -> int:
    if name in ("float4", "float8"):
        return _FIXED_PRECISION[name]
    if name == "numeric":
        return 0 if typmod == -1 else (typmod - 4) & 0xFFFF
    if name in ("time", "timetz", "timestamp", "timestamptz"):
        return 6 if typmod == -1 else typmod
    if name == "interval":
        return 6 if typmod == -1 else typmod & 0xFFFF
    return 0


def snapshot_length_and_scale(column: ColumnInfo) -> tuple[int, int | None]:
    """``Column.length()``/``scale()`` of a column read from JDBC metadata, as Debezium's snapshot has them.

    They are the streamed ones except for an unconstrained ``numeric``: length 0, no scale.
    """
    if column.type_modifier == -1 and not column.type_name.startswith("_") and _element_name(column) == "numeric":
        return 0, None
    return length_and_scale(column)


def length_and_scale(column: ColumnInfo) -> tuple[int, int]:
    """``Column.length()`` and ``Column.scale()`` of a streamed column, as Debezium's pgoutput decoder sets them."""
    name = "enum" if column.type_kind == "e" else _element_name(column)
    typmod = column.type_modifier
    if typmod != -1:
        return _precision(name, typmod), _scale(name, typmod)
    length = _precision(name, -1)
    return (length or _display_size(name, -1)), _scale(name, -1)


_SERIALS: Final = {"int2": "smallserial", "int4": "serial", "int8": "bigserial"}


def snapshot_type_name(column: ColumnInfo) -> str:
    """``Column.typeName()`` of a column read from JDBC metadata: pgjdbc's getColumns names an integer
    column whose default calls ``nextval(`` ``serial``/``bigserial``/``smallserial``; streamed columns
    keep ``int4``... (what ``datatype.propagate.source.type`` matches and ``__debezium.source.column.type`` says)."""
    serial = _SERIALS.get(column.type_name)
    if serial is not None and column.default is not None and "nextval(" in column.default:
        return serial
    return column.type_name
