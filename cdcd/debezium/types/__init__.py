"""PostgreSQL type converters: one module per type family, one registry.

``column_codec(column, options)`` is the entry point: it pairs a column's Kafka
Connect field schema with the converter from pgoutput text to the JSON value,
plus the values for NULL and unchanged TOAST. See ``docs/types.md`` for the
mapping table and the string fallback.
"""

from __future__ import annotations

from cdcd.debezium.types._schema import (
    BINARY_MODES,
    DECIMAL_MODES,
    HSTORE_MODES,
    INTERVAL_MODES,
    NATIVE_ATTR,
    NO_DEFAULT,
    TIME_MODES,
    Converter,
    FieldType,
    TypeOptions,
    Unrepresentable,
    identity,
)
from cdcd.debezium.types.registry import ColumnCodec, column_codec, column_default, field_type

__all__ = [
    "BINARY_MODES", "DECIMAL_MODES", "HSTORE_MODES", "INTERVAL_MODES", "NATIVE_ATTR", "NO_DEFAULT", "TIME_MODES",
    "ColumnCodec", "Converter", "FieldType", "TypeOptions", "Unrepresentable",
    "column_codec", "column_default", "field_type", "identity",
]
