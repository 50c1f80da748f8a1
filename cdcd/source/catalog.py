"""Questions cdcd asks the system catalogs over an ordinary connection.

The walsender can't answer SQL while it streams, so one regular connection
serves table metadata (nullability, defaults, primary keys: what Debezium's
schemas show and pgoutput doesn't send), server settings and publications.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg.pq import TransactionStatus

from cdcd.decode.messages import Relation
from cdcd.errors import SourceError, SourceUnavailable
from cdcd.source.tables import ColumnInfo, TableInfo
from cdcd.source.visibility import WAITS_S, look_until_found

log = structlog.get_logger("cdcd.catalog")

# Nullability and defaults by column name: the live catalog, as Debezium reads it.
_COLUMNS = """
SELECT a.attname, a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
"""

# Types by the Relation message's type oids: the column's type when the rows that follow were written.
_TYPES = """
SELECT t.oid, t.typname, t.typtype, bt.typname,
       (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e
        WHERE e.enumtypid = CASE WHEN t.typtype = 'e' THEN t.oid ELSE bt.oid END),
       t.typtypmod
FROM pg_type t
LEFT JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype
                                      WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem END
WHERE t.oid = ANY(%s)
"""

_PRIMARY_KEY = """
SELECT a.attname
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY k.ord
"""


# Without a primary key Debezium keys a table by its first unique index, in pgjdbc's
# getIndexInfo order (clustered, hash, other; then index name); attnum 0 is an
# expression, which disqualifies the index.
_UNIQUE_INDEXES = """
SELECT ci.relname, k.attnum, a.attname
FROM pg_index i
JOIN pg_class ci ON ci.oid = i.indexrelid
JOIN pg_am am ON am.oid = ci.relam
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisunique
ORDER BY CASE WHEN i.indisclustered THEN 1 WHEN am.amname = 'hash' THEN 2 ELSE 3 END, ci.relname, k.ord
"""


def _types(cur: Any, relation: Relation) -> dict[int, Any]:
    """Name, kind, base type, enum labels and domain type modifier of the relation's column types, by type OID."""
    cur.execute(_TYPES, (sorted({c.type_oid for c in relation.columns}),))
    return {int(r[0]): (str(r[1]), str(r[2]), r[3], r[4], int(r[5])) for r in cur.fetchall()}


def first_unique_index(rows: list[tuple[object, ...]]) -> tuple[str, ...]:
    """The columns of the first index of ``_UNIQUE_INDEXES`` rows that has no expression; () if none."""
    indexes: dict[str, list[str | None]] = {}
    for index, attnum, name in rows:
        indexes.setdefault(str(index), []).append(str(name) if attnum and name is not None else None)
    for columns in indexes.values():
        if None not in columns:
            return tuple(c for c in columns if c is not None)
    return ()


@dataclass(frozen=True, slots=True)
class PublicationInfo:
    name: str
    all_tables: bool
    tables: tuple[str, ...]
    publishes: tuple[str, ...]


def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection with a clear error when the DSN is wrong."""
    try:
        return psycopg.connect(dsn, autocommit=True, application_name="cdcd-catalog",
                               options="-c TimeZone=UTC -c DateStyle=ISO")
    except psycopg.OperationalError as exc:
        message = str(exc).strip()
        hint = ""
        lowered = message.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            hint = " (check the user and password in --dsn / CDCD_DSN)"
        elif "does not exist" in lowered:
            hint = " (check dbname in --dsn: the database does not exist)"
        elif "connection refused" in lowered or "could not translate host" in lowered or "timeout" in lowered:
            hint = " (is PostgreSQL running and reachable at the host/port in --dsn?)"
        error = SourceError if hint and "reachable" not in hint else SourceUnavailable
        raise error(f"cannot connect to PostgreSQL: {message}{hint}") from exc


_VISIBLE = "SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = %s)"


class Catalog:
    """Reads table metadata; caches nothing (the caller caches per Relation message)."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]], *,
                 waits_s: tuple[float, ...] = WAITS_S, sleep: Callable[[float], None] = time.sleep) -> None:
        self.conn = conn
        self._waits_s = waits_s
        self._sleep = sleep

    def table_info(self, relation: Relation) -> TableInfo:
        """Merge a Relation message with the catalogs.

        The Relation message describes the rows that follow, which may have been
        written before a later ``ALTER TABLE`` that the live catalog already
        shows: column order, names, type oids and modifiers come from it, and
        the type's name and kind are looked up by that oid. Nullability,
        defaults and the primary key come from the live catalog by column name,
        as Debezium reads them (docs/debezium-compatibility.md); without a
        primary key, the first unique index is the key, as in Debezium; a column the
        catalog no longer has (dropped or renamed since) is optional with no
        default, and key columns missing from the message are left out.

        A table created by the very transaction being streamed may not be visible
        yet (``cdcd.source.visibility``): it is looked for again, briefly, instead of
        being described as all-optional and keyless; all the queries read one snapshot.
        """
        try:
            found = look_until_found(lambda: self._read(relation), self._waits_s, self._sleep)
            if found is None:  # dropped since, most likely
                log.warning("table_not_in_catalog", table=f"{relation.namespace}.{relation.name}",
                            oid=relation.oid, detail="described from the Relation message alone")
                with self.conn.cursor() as cur:
                    found = ({}, _types(cur, relation), ())
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(f"catalog connection lost: {exc}") from exc
        by_name, types, primary_key = found
        columns = []
        for col in relation.columns:
            notnull, default = by_name.get(col.name, (False, None))
            typname, typtype, base, labels, domain_typmod = types.get(col.type_oid, ("unknown", "b", None, None, -1))
            # a domain column's atttypmod is -1; its length/precision is the domain's typtypmod, which
            # pgjdbc's getColumns reports and Debezium uses (numeric(8,3) domain: Decimal of scale 3)
            typmod = domain_typmod if typtype == "d" and col.type_modifier == -1 else col.type_modifier
            columns.append(ColumnInfo(
                name=col.name, type_oid=col.type_oid, type_name=typname,
                type_modifier=typmod, optional=not notnull,
                default=str(default) if default is not None else None,
                type_kind=typtype, base_type_name=str(base) if base is not None else None,
                enum_values=tuple(str(v) for v in labels) if labels is not None else None,
            ))
        names = {c.name for c in columns}
        primary_key = tuple(name for name in primary_key if name in names)
        return TableInfo(oid=relation.oid, schema=relation.namespace, name=relation.name,
                         columns=tuple(columns), primary_key=primary_key,
                         replica_identity=relation.replica_identity)

    def _read(self, relation: Relation) -> tuple[dict[str, Any], dict[int, Any], tuple[str, ...]] | None:
        """Columns, types and key of a relation the catalog shows, in one snapshot; None when it does not."""
        conn = self.conn
        if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return self._queries(relation)
        return self._queries(relation)  # a snapshot's own transaction (its tables are visible in it)

    def _queries(self, relation: Relation) -> tuple[dict[str, Any], dict[int, Any], tuple[str, ...]] | None:
        with self.conn.cursor() as cur:
            cur.execute(_VISIBLE, (relation.oid,))
            row = cur.fetchone()
            if not (row and row[0]):
                return None
            cur.execute(_COLUMNS, (relation.oid,))
            by_name = {str(r[0]): (bool(r[1]), r[2]) for r in cur.fetchall()}
            types = _types(cur, relation)
            cur.execute(_PRIMARY_KEY, (relation.oid,))
            primary_key = tuple(str(r[0]) for r in cur.fetchall())
            if not primary_key:
                cur.execute(_UNIQUE_INDEXES, (relation.oid,))
                primary_key = first_unique_index(cur.fetchall())
        return by_name, types, primary_key

    def setting(self, name: str) -> str:
        with self.conn.cursor() as cur:
            cur.execute("SELECT current_setting(%s)", (name,))
            row = cur.fetchone()
        return str(row[0]) if row else ""

    def database(self) -> str:
        with self.conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            row = cur.fetchone()
        return str(row[0]) if row else ""

    def can_replicate(self) -> bool:
        with self.conn.cursor() as cur:
            cur.execute("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cur.fetchone()
        return bool(row and row[0])

    def publication(self, name: str) -> PublicationInfo | None:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate "
                "FROM pg_publication WHERE pubname = %s", (name,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                "SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                "WHERE pubname = %s ORDER BY 1", (name,))
            tables = tuple(str(r[0]) for r in cur.fetchall())
        kinds = ("insert", "update", "delete", "truncate")
        publishes = tuple(k for k, on in zip(kinds, row[1:]) if on)
        return PublicationInfo(name=name, all_tables=bool(row[0]), tables=tables, publishes=publishes)

    def tables(self) -> list[str]:
        """Every ordinary or partitioned user table, as ``schema.table``."""
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%%' AND NOT c.relispartition ORDER BY 1")
            return [str(r[0]) for r in cur.fetchall()]

    def slot_lag_bytes(self, slot: str) -> int | None:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else None  # type: ignore[call-overload]

    def close(self) -> None:
        self.conn.close()
