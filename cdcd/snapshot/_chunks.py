"""The incremental snapshot's database side: watermarks, table descriptions, chunk SELECTs.

One autocommit connection whose text output is pgoutput's, so a chunk row is
exactly the strings the stream would send for it, and its key compares equal
to the key of a streamed change. Every statement is its own transaction: a
chunk's SELECT sees what committed before it, which is what the watermarks
around it rely on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from cdcd.debezium.envelope import EnvelopeOptions, TableEncoder
from cdcd.decode.messages import Relation, TupleData
from cdcd.errors import SourceError
from cdcd.snapshot._reader import connect_text, text_rows
from cdcd.snapshot._tables import TablePlan, plan_tables, relation_for, tables_to_snapshot
from cdcd.source.catalog import Catalog
from cdcd.source.signal_table import signal_table_identifier, signal_table_name
from cdcd.source.tables import TableInfo

_KEY_TYPES = ("SELECT format_type(a.atttypid, a.atttypmod) FROM unnest(%s::text[]) WITH ORDINALITY k(name, ord) "
              "JOIN pg_attribute a ON a.attrelid = %s AND a.attname = k.name ORDER BY k.ord")
_FIRST_COLUMN = ("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                 "AND NOT attisdropped ORDER BY attnum LIMIT 1")


class TableUnusable(Exception):
    """The table cannot be read in key order; the snapshot skips it."""


@dataclass(slots=True)
class ChunkTable:
    """A table as its chunks are read and encoded now."""

    plan: TablePlan
    relation: Relation
    info: TableInfo
    encoder: TableEncoder
    key_positions: tuple[int, ...]
    """Where the primary key columns are in a row (the relation's column order)."""
    key_types: tuple[str, ...]
    """``format_type`` of each key column: the casts of the key bounds."""

    def key(self, row: TupleData) -> tuple[Any, ...]:
        return tuple([row[i] for i in self.key_positions])


class ChunkSource:
    def __init__(self, dsn: str, signal_table: str, publication: str, options: EnvelopeOptions) -> None:
        self.dsn = dsn
        self.signal_table = signal_table_name(signal_table)
        self.publication = publication
        self.options = replace(options, snapshot_reads=True)  # rows come from result sets
        self._signal_ident = signal_table_identifier(signal_table)
        self._signal_id_column: str | None = None
        self._conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect_text(self.dsn, "cdcd-incremental-snapshot")
            # A watermark must not wait for a synchronous standby that might be this very slot.
            self._conn.execute("SET synchronous_commit TO local")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # psycopg's close() only frees the connection: it does not raise
            self._conn = None

    # -- watermarks --------------------------------------------------------------------------

    def write_watermark(self, signal_id: str, kind: str, data: str) -> None:
        self.connection().execute(sql.SQL("INSERT INTO {} VALUES ({}, {}, {})").format(
            self._signal_ident, sql.Literal(signal_id), sql.Literal(kind), sql.Literal(data)))

    def delete_watermark(self, signal_id: str) -> None:
        conn = self.connection()
        if self._signal_id_column is None:
            row = conn.execute(_FIRST_COLUMN, (self._signal_ident.as_string(conn),)).fetchone()
            if row is None:
                raise SourceError(f"the signal table {self.signal_table} has no columns")
            self._signal_id_column = str(row[0])
        conn.execute(sql.SQL("DELETE FROM {} WHERE {} = {}").format(
            self._signal_ident, sql.Identifier(self._signal_id_column), sql.Literal(signal_id)))

    # -- tables ------------------------------------------------------------------------------

    def captured_tables(self, accept: Callable[[str], bool]) -> list[str]:
        return [t for t in tables_to_snapshot(self.connection(), self.publication, accept) if t != self.signal_table]

    def describe(self, name: str, previous: ChunkTable | None) -> ChunkTable:
        """``name`` as it is now (a schema change since ``previous`` is picked up)."""
        conn = self.connection()
        try:
            plan = plan_tables(conn, [name], self.publication)[0]
            relation = relation_for(conn, plan.schema, plan.table, publication=self.publication)
            info = Catalog(conn).table_info(relation)
        except (SourceError, psycopg.errors.ProgrammingError) as exc:
            raise TableUnusable(str(exc).strip()) from exc
        if not info.primary_key:
            raise TableUnusable("the table has no primary key, so it cannot be read in key order (add one, or "
                                "snapshot it with snapshot.mode=always)")
        if any(c.optional for c in info.columns if c.name in info.primary_key):
            # Keyed by a unique index over a nullable column: key order would skip rows with NULL keys.
            raise TableUnusable("the table has no primary key and its unique-index key has a nullable column, "
                                "so key order would miss rows (add a primary key, or use snapshot.mode=always)")
        if previous is not None and (previous.plan, previous.relation, previous.info) == (plan, relation, info):
            return previous
        names = [c.name for c in relation.columns]
        if not all(k in names for k in info.primary_key):
            raise TableUnusable("the publication's column list leaves out primary key columns")
        types = tuple(str(r[0]) for r in conn.execute(_KEY_TYPES, (list(info.primary_key), relation.oid)).fetchall())
        encoder = previous.encoder if previous is not None and previous.info == info else TableEncoder(info, self.options)
        return ChunkTable(plan, relation, info, encoder, tuple(names.index(k) for k in info.primary_key), types)

    # -- reads -------------------------------------------------------------------------------

    def max_key(self, table: ChunkTable, condition: str | None) -> list[str | None] | None:
        """The largest key (as text) among the rows the snapshot reads; None when there are none."""
        order = sql.SQL(", ").join(sql.SQL("{} DESC").format(self._column(table, i)) for i in table.key_positions)
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {} LIMIT 1").format(
            self._keys(table), _source(table.plan), _where(_filters(table.plan, condition)), order)
        found = text_rows(self.connection().execute(query).pgresult)
        return [v if v is None else str(v) for v in found[0]] if found else None

    def chunk(self, table: ChunkTable, after: list[str | None] | None, upto: list[str | None],
              condition: str | None, limit: int) -> list[TupleData]:
        """Up to ``limit`` rows with ``after < key <= upto``, in key order."""
        keys = self._keys(table)
        bounds = _filters(table.plan, condition)
        if after is not None:
            bounds.append(sql.SQL("({}) > ({})").format(keys, _literals(after, table.key_types)))
        bounds.append(sql.SQL("({}) <= ({})").format(keys, _literals(upto, table.key_types)))
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {} LIMIT {}").format(
            sql.SQL(", ").join(sql.Identifier(c.name) for c in table.relation.columns), _source(table.plan),
            _where(bounds), keys, sql.Literal(limit))
        return text_rows(self.connection().execute(query).pgresult)

    @staticmethod
    def _column(table: ChunkTable, index: int) -> sql.Identifier:
        return sql.Identifier(table.relation.columns[index].name)

    def _keys(self, table: ChunkTable) -> sql.Composable:
        return sql.SQL(", ").join(self._column(table, i) for i in table.key_positions)


def _source(plan: TablePlan) -> sql.Composable:
    return plan.ident  # without ONLY, as TablePlan.select


def _filters(plan: TablePlan, condition: str | None) -> list[sql.Composable]:
    """The signal's additional condition and the publication's row filter.

    The query runs without parameters, so a ``%`` in them is plain SQL.
    """
    return [sql.SQL("({})").format(sql.SQL(f)) for f in (condition, plan.row_filter) if f]


def _where(parts: list[sql.Composable]) -> sql.Composable:
    if not parts:
        return sql.SQL("")
    return sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(parts))


def _literals(values: list[str | None], types: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}::{}").format(sql.Literal(v), sql.SQL(t)) for v, t in zip(values, types))
