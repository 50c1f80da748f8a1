"""Type converters (compatibility facade over ``cdcd.types``).

The converters live in ``cdcd.types``, one module per type family with a
registry, to keep modules small; import from either place.
"""

from __future__ import annotations

from cdcd.types import (
    NO_DEFAULT,
    ColumnCodec,
    Converter,
    FieldType,
    TypeOptions,
    Unrepresentable,
    column_codec,
    column_default,
    field_type,
)

__all__ = [
    "NO_DEFAULT", "ColumnCodec", "Converter", "FieldType", "TypeOptions", "Unrepresentable",
    "column_codec", "column_default", "field_type",
]
