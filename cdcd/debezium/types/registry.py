"""Type registry: ``ColumnInfo`` to the ``FieldType`` and per-column ``ColumnCodec``.

Keyed on ``pg_type.typname`` (the OID of builtins is a second key, for a
catalog that could not name a type). Enums (``typtype 'e'``) become
``io.debezium.data.Enum`` with their labels (``ColumnInfo.enum_values``);
domains resolve through ``base_type_name``; arrays (``_name``) through their
element. A type Debezium has no converter for is left out (``dropped``), or
with ``include.unknown.datatypes`` carried as bytes; both set ``is_fallback``
so the caller can warn once. Resolution never raises.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, Final, Mapping, Sequence

from cdcd.debezium.types import arrays, geometric, javasql, numeric, temporal, text
from cdcd.debezium.types._schema import NO_DEFAULT, Converter, FieldType, TypeOptions
from cdcd.debezium.types.defaults import default_parser
from cdcd.source.tables import ColumnInfo

Builder = Callable[[int, TypeOptions], FieldType]

_SCALARS: Final[dict[str, Builder]] = {
    "int2": lambda m, o: numeric.integer("int2"),
    "int4": lambda m, o: numeric.integer("int4"),
    "int8": lambda m, o: numeric.integer("int8"),
    "oid": lambda m, o: numeric.integer("oid"),
    "float4": lambda m, o: numeric.floating("float4"),
    "float8": lambda m, o: numeric.floating("float8"),
    "bool": lambda m, o: numeric.boolean(),
    "numeric": numeric.numeric,
    "money": lambda m, o: numeric.money(o),
    "bit": lambda m, o: numeric.bits("bit", m),
    "varbit": lambda m, o: numeric.bits("varbit", m),
    "bytea": lambda m, o: text.bytea(o),
    "hstore": lambda m, o: text.hstore(o),
    "date": lambda m, o: javasql.snapshot_date(temporal.date(o)) if o.snapshot_reads else temporal.date(o),
    "time": lambda m, o: temporal.time(m, o),
    "timetz": lambda m, o: temporal.timetz(),
    "timestamp": lambda m, o: temporal.timestamp(m, o),
    "timestamptz": lambda m, o: temporal.timestamptz(m),
    "interval": lambda m, o: temporal.interval(o),
    "point": lambda m, o: geometric.point(),
    "tsvector": lambda m, o: text.tsvector(o),
    "name": lambda m, o: text.name_type(o),
    "int2vector": lambda m, o: text.int2vector(),
}
for _name in (*text.STRING_TYPES, "uuid", "json", "jsonb", "xml", "ltree"):
    _SCALARS[_name] = (lambda t: lambda m, o: text.string(t, o))(_name)

# Builtin OIDs, for a ColumnInfo whose type_name is not a typname we know.
OIDS: Final[dict[int, str]] = {
    16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4", 25: "text",
    26: "oid", 114: "json", 142: "xml", 650: "cidr", 700: "float4", 701: "float8", 774: "macaddr8",
    790: "money", 829: "macaddr", 869: "inet", 1042: "bpchar", 1043: "varchar", 1082: "date",
    1083: "time", 1114: "timestamp", 1184: "timestamptz", 1186: "interval", 1266: "timetz",
    1560: "bit", 1562: "varbit", 1700: "numeric", 2950: "uuid", 3802: "jsonb", 600: "point", 3614: "tsvector",
    3904: "int4range", 3906: "numrange", 3908: "tsrange", 3910: "tstzrange", 3912: "daterange",
    3926: "int8range",
}


@dataclass(frozen=True, slots=True)
class ColumnCodec:
    """Everything the envelope needs per column, computed once per table version.

    ``schema`` is the field schema including ``"field"``; ``null_value`` is what
    a SQL NULL (or a column absent from a key-only old tuple) becomes: the schema
    default (JsonConverter's ``replace.null.with.default``), else null if
    optional, else the type's zero; ``unavailable`` is the unchanged-TOAST value.
    ``dropped`` columns are left out of the key and the value.
    """

    name: str
    schema: dict[str, Any]
    convert: Converter
    null_value: Any
    unavailable: Any
    optional: bool
    is_fallback: bool
    dropped: bool = False


def _scalar(name: str, typmod: int, options: TypeOptions) -> FieldType | None:
    builder = _SCALARS.get(name)
    return None if builder is None else builder(typmod, options)


def _array(name: str, typmod: int, options: TypeOptions, labels: Sequence[str] | None) -> FieldType:
    """An array column of element type ``name``, as Debezium shapes it (see ``cdcd.debezium.types.arrays``)."""
    if labels is not None:
        return arrays.array_of(text.enum(labels, options), options, required=True)
    if name in arrays.NEVER_EMITTED:
        return text.DROPPED
    if name == "bit":
        return arrays.bit_array(numeric.bits("bit", typmod))
    element = _scalar(name, typmod, options)
    if element is not None and name == "numeric":
        return arrays.array_of(arrays.numeric_element(element), options, element_name=name)
    if element is not None and name in arrays.OPTIONAL_ELEMENTS:
        return arrays.array_of(javasql.temporal_element(name, element, typmod), options, element_name=name)
    if element is not None and name in arrays.REQUIRED_ELEMENTS:
        return arrays.array_of(element, options, required=True, element_name=name)
    if name in text.EXTENSION_TYPES:
        return text.extension_text(options)
    unknown = text.unknown(name, options)
    return unknown if unknown.dropped else arrays.array_of(unknown, options, required=True)


def field_type(
    column: ColumnInfo, options: TypeOptions, enum_values: Mapping[str, Sequence[str]] | None = None,
) -> FieldType:
    """The ``FieldType`` for one column; ``text.DROPPED`` or unknown-type bytes if Debezium has no converter."""
    labels = enum_values or {}
    name = column.type_name
    own = column.enum_values
    if column.type_kind == "e":
        return text.enum(own if own is not None else labels.get(name), options)
    if column.type_kind == "d" and column.base_type_name:
        name = column.base_type_name
        if own is not None or name in labels:
            return text.enum(own if own is not None else labels[name], options)
    if name.startswith("_"):
        element_name = column.base_type_name if column.type_kind != "d" and column.base_type_name else name[1:]
        element_labels = own if own is not None else labels.get(element_name)
        return _array(element_name, column.type_modifier, options, element_labels)
    if name == "name" and column.type_kind in ("b", "d"):
        return text.name_type(options, required=not column.optional)
    if column.type_kind in ("b", "d", "r"):
        found = _scalar(name, column.type_modifier, options)
        if found is None and column.type_oid in OIDS:
            found = _scalar(OIDS[column.type_oid], column.type_modifier, options)
        if found is not None:
            return found
    return text.unknown(name, options)


def column_default(column: ColumnInfo, field: FieldType) -> Any:
    """The schema default Debezium derives from ``column.default``, or ``NO_DEFAULT``."""
    if column.default is None:
        return NO_DEFAULT
    if column.type_kind == "e" and field.name == "io.debezium.data.Enum":
        label = text.enum_default(column.type_name, column.default)
        return NO_DEFAULT if label is None else label
    if column.type_kind != "b" or column.type_name.startswith("_"):
        return NO_DEFAULT  # Debezium's mappers are keyed on builtin type names only
    convert = field.convert
    if column.type_name == "interval":
        convert = temporal.default_text_converter(field)
    elif column.type_name == "time":
        convert = temporal.default_time_converter(field)
    elif column.type_name in ("date", "timestamp", "timestamptz"):
        convert = temporal.default_infinity_converter(field, column.type_name)
    elif column.type_name == "uuid":
        convert = lambda t: str(uuid.UUID(t))  # noqa: E731 - UUID.fromString().toString()
    parse = default_parser(column.type_name, convert)
    if parse is None:
        return NO_DEFAULT
    value = parse(column.default)
    return NO_DEFAULT if isinstance(value, dict) else value  # KAFKA-12694: no struct defaults


def column_codec(
    column: ColumnInfo,
    options: TypeOptions,
    enum_values: Mapping[str, Sequence[str]] | None = None,
    replace_null_with_default: bool = True,
) -> ColumnCodec:
    """Pair the column's field schema with its converter and its NULL/TOAST values."""
    field = field_type(column, options, enum_values)
    default = column_default(column, field)
    schema = field.schema(column.optional, default)
    schema["field"] = column.name
    if default is not NO_DEFAULT and (replace_null_with_default or not column.optional):
        null_value = default
    else:
        null_value = None if column.optional else field.zero
    unavailable = null_value if field.unavailable is NO_DEFAULT else field.unavailable
    return ColumnCodec(column.name, schema, field.convert, null_value, unavailable, column.optional,
                       field.is_fallback, field.dropped)
