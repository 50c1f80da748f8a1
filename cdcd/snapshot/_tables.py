"""Which tables the snapshot reads, and how pgoutput would describe them.

``relation_for`` builds the ``Relation`` message pgoutput would send for a
table (column order, type OIDs and modifiers, key flags), so that snapshot
rows go through the same ``Catalog.table_info`` → ``TableEncoder`` path as
streamed rows and produce the same schemas. ``TablePlan`` adds what the
reader needs per table: the SELECT, the publication's row filter, and the
row estimate for progress reporting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from cdcd.decode.messages import Relation, RelationColumn
from cdcd.errors import SourceError

# Columns as pgoutput's Relation message lists them: attnum order, not
# dropped, not generated (unless %(generated)s); a column is a key column when it
# belongs to the replica identity (every column for REPLICA IDENTITY FULL).
_ATTRIBUTES = """
SELECT a.attname, a.atttypid::int8, a.atttypmod,
       CASE WHEN a.attgenerated <> '' THEN false
            WHEN %(ident)s = 'f' THEN true WHEN %(ident)s = 'n' THEN false
            ELSE coalesce(a.attnum = ANY (k.indkey), false) END
FROM pg_attribute a
LEFT JOIN LATERAL (
    SELECT i.indkey::int2[] AS indkey FROM pg_index i
    WHERE i.indrelid = a.attrelid
      AND CASE %(ident)s WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END
    LIMIT 1) k ON true
WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped AND (a.attgenerated = '' OR %(generated)s)
ORDER BY a.attnum
"""

_RELATION = """
SELECT c.oid::int8, n.nspname, c.relname, c.relreplident::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""

# Resolve "schema.table" names in input order, with the planner's row estimate
# (pg_class.reltuples, -1 = never analyzed; summed over the leaves of a
# partitioned table).
_RESOLVE = """
SELECT q.name, c.oid::int8, n.nspname, c.relname, c.relkind::text,
       CASE WHEN c.relkind = 'p' THEN (
                SELECT sum(p.reltuples) FILTER (WHERE p.reltuples >= 0)
                FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
            WHEN c.reltuples >= 0 THEN c.reltuples END::float8
FROM unnest(%s::text[]) WITH ORDINALITY AS q(name, ord)
LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace)
       ON n.nspname || '.' || c.relname = q.name AND c.relkind IN ('r', 'p')
ORDER BY q.ord
"""

# The publication's tables with their partition trees: every partitioned table
# above and every partition below a published one (Debezium reads them all).
_PUBLISHED_TREES = """
WITH pub AS (
    SELECT c.oid FROM pg_publication_tables t
    JOIN pg_namespace n ON n.nspname = t.schemaname
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
    WHERE t.pubname = %s)
SELECT DISTINCT n.nspname || '.' || c.relname
FROM pub CROSS JOIN LATERAL (
    SELECT pub.oid AS relid
    UNION SELECT relid FROM pg_partition_ancestors(pub.oid)
    UNION SELECT relid FROM pg_partition_tree(pub.oid)) r
JOIN pg_class c ON c.oid = r.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
"""

# PostgreSQL 15+: a publication may publish a column list and a row filter.
_PUBLICATION_TABLE = """
SELECT attnames::text[], rowfilter FROM pg_publication_tables
WHERE pubname = %s AND schemaname = %s AND tablename = %s
"""

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class TablePlan:
    """One table to read: identity, SELECT and row estimate."""

    name: str
    """As given: ``schema.table``."""
    oid: int
    schema: str
    table: str
    partitioned: bool
    estimate: int | None
    """``pg_class.reltuples`` rounded; None when the table was never analyzed."""
    row_filter: str | None = None
    """The publication's WHERE expression (PostgreSQL 15+), applied to the snapshot too."""

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    def select(self, relation: Relation, blocks: tuple[int | None, int | None] = (None, None)) -> sql.Composed:
        """``SELECT <relation's columns> FROM schema.table [WHERE filter]``, of the ``blocks`` range only.

        Without ``ONLY``, as Debezium reads: a partitioned table's rows include
        its partitions', an inheritance parent's its children's. ``blocks``
        (first, end) reads the rows whose ``ctid`` is in that range of heap
        blocks (None: from the start / to the end), a TID range scan.
        """
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in relation.columns)
        query = sql.SQL("SELECT {} FROM {}").format(columns, self.ident)
        conditions = [sql.SQL("({})").format(sql.SQL(self.row_filter))] if self.row_filter else []
        first, end = blocks
        if first is not None:
            conditions.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({first},0)")))
        if end is not None:
            conditions.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({end},0)")))
        if conditions:
            query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(conditions))
        return query


@dataclass(frozen=True, slots=True)
class TablePart:
    """A range of a table's heap blocks, read by one worker: tables split so several workers read one."""

    table: int
    """The table's index in the plans."""
    number: int
    """0, 1, ... in block order; the table's rows are its parts' rows in that order."""
    blocks: tuple[int | None, int | None] = (None, None)
    last: bool = True


_SPLITTABLE = """
SELECT pg_relation_size(c.oid) / current_setting('block_size')::int8,
       EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)
FROM pg_class c WHERE c.oid = %s
"""
MIN_PART_BLOCKS = 64
"""A part is at least this many heap blocks (512 kB): smaller tables are read whole."""


def split_tables(conn: Conn, plans: Sequence[TablePlan], degree: int) -> list[TablePart]:
    """Each table as ``degree`` parts of consecutive heap blocks, or whole when that does not pay.

    Whole: one worker, a small table, a partitioned table or an inheritance
    parent (rows in other heaps), or a server before PostgreSQL 14 (no TID
    range scans). The last part is open-ended, so rows in blocks added since
    the size was read (invisible to the snapshot anyway) are never missed.
    """
    parts: list[TablePart] = []
    split = degree > 1 and conn.info.server_version >= 140000
    for index, plan in enumerate(plans):
        blocks, inherited = 0, True
        if split and not plan.partitioned:
            row = conn.execute(_SPLITTABLE, (plan.oid,)).fetchone()
            if row is not None:
                blocks, inherited = int(row[0]), bool(row[1])
        count = min(degree, blocks // MIN_PART_BLOCKS) if split and not inherited else 1
        if count <= 1:
            parts.append(TablePart(index, 0))
            continue
        bounds = [blocks * k // count for k in range(count + 1)]
        for k in range(count):
            parts.append(TablePart(index, k, (None if k == 0 else bounds[k], None if k == count - 1 else bounds[k + 1]),
                                   last=k == count - 1))
    return parts


def relation_for(conn: Conn, schema: str, table: str, *, publication: str | None = None,
                 generated: bool = False) -> Relation:
    """The ``Relation`` message pgoutput would send for ``schema.table`` now.

    Run it in the snapshot's transaction to describe the table as the
    snapshot sees it. With ``publication`` (PostgreSQL 15+), a column list in
    the publication is applied as pgoutput applies it. ``generated`` adds the
    stored generated columns pgoutput leaves out, as Debezium's initial snapshot
    reads them (when no column list names the columns).
    """
    row = conn.execute(_RELATION, (schema, table)).fetchone()
    if row is None:
        raise SourceError(f"table {schema}.{table} does not exist (or is not a table): "
                          "fix table.include.list / the publication, or re-create the table")
    oid, namespace, name, ident = int(row[0]), str(row[1]), str(row[2]), str(row[3])
    attributes = conn.execute(_ATTRIBUTES, {"oid": oid, "ident": ident, "generated": generated}).fetchall()
    published = _column_list(conn, publication, schema, table)
    columns = tuple(
        RelationColumn(is_key=bool(is_key), name=str(attname), type_oid=int(typid), type_modifier=int(typmod))
        for attname, typid, typmod, is_key in attributes
        if published is None or attname in published
    )
    return Relation(oid=oid, namespace=namespace, name=name, replica_identity=ident, columns=columns)


def tables_to_snapshot(conn: Conn, publication: str, accept: Callable[[str], bool]) -> list[str]:
    """The tables that ``accept`` (the include/exclude filter) keeps, as ``schema.table``.

    As Debezium reads them: a partitioned table as itself *and* as each of its
    partitions (each read whole), whichever of them the publication names
    (``publish_via_partition_root`` or not). Tables outside the publication's
    partition trees are not read: cdcd would never stream their changes.
    Sorted by name (code point order, as Debezium sorts table ids).
    """
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone() is None:
        raise SourceError(f"publication {publication!r} does not exist: create it (CREATE PUBLICATION "
                          f"{publication} FOR ALL TABLES) or fix publication.name")
    rows = conn.execute(_PUBLISHED_TREES, (publication,)).fetchall()
    return [name for name in sorted(str(r[0]) for r in rows) if accept(name)]


def plan_tables(conn: Conn, names: Sequence[str], publication: str | None) -> list[TablePlan]:
    """Resolve ``schema.table`` names (in the snapshot) into plans, in the given order."""
    filters = publication is not None and conn.info.server_version >= 150000
    plans: list[TablePlan] = []
    seen: set[str] = set()
    for name, oid, schema, table, relkind, estimate in conn.execute(_RESOLVE, (list(names),)).fetchall():
        if name in seen:
            raise SourceError(f"table name {name!r} is ambiguous (a schema or table name contains a dot)")
        seen.add(name)
        if oid is None:
            raise SourceError(f"table {name} does not exist in the snapshot (dropped, renamed, or not a "
                              "table): fix table.include.list / the publication")
        row_filter = None
        if filters:
            found = conn.execute(_PUBLICATION_TABLE, (publication, schema, table)).fetchone()
            row_filter = str(found[1]) if found is not None and found[1] is not None else None
        plans.append(TablePlan(
            name=str(name), oid=int(oid), schema=str(schema), table=str(table), partitioned=relkind == "p",
            estimate=None if estimate is None else round(estimate), row_filter=row_filter))
    return plans


def lock_tables(conn: Conn, plans: Sequence[TablePlan]) -> None:
    """ACCESS SHARE locks until the snapshot ends: no concurrent DDL can rewrite a table under it.

    A rewriting ALTER TABLE (or CLUSTER, VACUUM FULL) is not MVCC-safe: a
    snapshot older than the rewrite would read the table as empty, and the
    rows are never streamed either. Plain reads and writes are not blocked.
    """
    if plans:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
            sql.SQL(", ").join(p.ident for p in plans)))


def _column_list(conn: Conn, publication: str | None, schema: str, table: str) -> set[str] | None:
    if publication is None or conn.info.server_version < 150000:
        return None
    found = conn.execute(_PUBLICATION_TABLE, (publication, schema, table)).fetchone()
    if found is None or found[0] is None:
        return None
    return {str(name) for name in found[0]}
