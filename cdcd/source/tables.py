"""What cdcd knows about a captured table.

pgoutput's Relation message names the columns and their types but not their
nullability, defaults or the primary key, all of which Debezium's schemas
show. ``cdcd.source.catalog`` merges the Relation message (authoritative for column
order, type and modifier) with the system catalogs into a ``TableInfo``; the
envelope builder needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type_oid: int
    type_name: str
    """``pg_type.typname`` (``int4``, ``numeric``, ``_text`` for ``text[]``, an enum's name)."""
    type_modifier: int
    """``atttypmod``; -1 when the type has none (e.g. ``numeric`` without precision)."""
    optional: bool
    """True unless the column is ``NOT NULL``."""
    default: str | None = None
    """The column default as ``pg_get_expr`` prints it (``'n/a'::text``), or None."""
    type_kind: str = "b"
    """``pg_type.typtype``: b base, e enum, d domain, c composite, r range, m multirange."""
    base_type_name: str | None = None
    """For a domain, the ``typname`` of the type it is over; for an array, of its elements."""
    enum_values: tuple[str, ...] | None = None
    """The labels, in order, of the enum the column holds (directly, through a domain, or as array elements)."""


@dataclass(frozen=True, slots=True)
class TableInfo:
    oid: int
    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    """Columns of the message key, in key order: the primary key, else the first unique index (as Debezium);
    empty when the table has neither."""
    replica_identity: str = "d"

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"
