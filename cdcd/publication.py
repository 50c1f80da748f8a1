"""The publication cdcd streams from, created so that it never breaks the application's writes.

PostgreSQL rejects UPDATE and DELETE on a table that a publication publishes updates or
deletes of, unless the table has a replica identity (a primary key, ``REPLICA IDENTITY
USING INDEX`` or ``FULL``). A ``FOR ALL TABLES`` publication created over a table without
one would therefore make the application's own statements fail. When cdcd creates the
publication and such tables exist, it publishes the other tables fully and those tables in
a second publication, ``<publication.name>_insert_only``, with ``publish = 'insert,
truncate'``; cdcd streams both. A publication the user created is the user's choice: cdcd
warns about such tables and changes nothing.
"""

from __future__ import annotations

import psycopg
import structlog
from psycopg import sql

from .catalog import Catalog
from .config import Config
from .errors import ConfigError, SourceError, is_permanent_sqlstate
from .filters import TableFilter
from .signals import signal_table_name

log = structlog.get_logger("cdcd.publication")

INSERT_ONLY_SUFFIX = "_insert_only"

# Ordinary tables (partitions included: their own identity counts for their rows) that
# have no usable replica identity: NOTHING, or DEFAULT without a primary key.
_WITHOUT_IDENTITY = """
SELECT n.nspname || '.' || c.relname FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
  AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (
        SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
ORDER BY 1
"""

FIX = ("add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (or USING INDEX on a unique, "
       "non-null index)")


def insert_only_name(name: str) -> str:
    return f"{name}{INSERT_ONLY_SUFFIX}"


def tables_without_identity(catalog: Catalog) -> list[str]:
    return [str(r[0]) for r in catalog.conn.execute(_WITHOUT_IDENTITY).fetchall()]


def blocked_tables(catalog: Catalog, name: str) -> list[str]:
    """Tables whose UPDATE/DELETE PostgreSQL rejects because publication ``name`` publishes them."""
    pub = catalog.publication(name)
    if pub is None or not ({"update", "delete"} & set(pub.publishes)):
        return []
    missing = tables_without_identity(catalog)
    if pub.all_tables:
        return missing
    published = set(pub.tables)  # pg_publication_tables: partitions of a published partitioned table included
    return [t for t in missing if t in published]


def publication_names(config: Config, catalog: Catalog) -> list[str]:
    """What to stream from: the publication, and its insert-only companion when cdcd created one."""
    names = [config.publication_name]
    companion = insert_only_name(config.publication_name)
    if catalog.publication(companion) is not None:
        names.append(companion)
    return names


def ensure_publication(config: Config, catalog: Catalog) -> None:
    name = config.publication_name
    if catalog.publication(name) is not None:
        blocked = blocked_tables(catalog, name)
        if blocked:
            # The user's publication: their choice. Say what it does to the application.
            log.warning("publication_blocks_application_writes", publication=name, tables=blocked,
                        detail="PostgreSQL rejects UPDATE and DELETE on these tables while this publication "
                               f"publishes updates or deletes of them: {FIX}")
        return
    mode = config.publication_autocreate_mode
    if mode == "disabled":
        raise SourceError(
            f"publication {name!r} does not exist and publication.autocreate.mode=disabled: "
            f"CREATE PUBLICATION {name} FOR ALL TABLES (or FOR TABLE ...), or fix publication.name")
    existing = catalog.tables()
    tables: list[str] | None = None
    if mode == "filtered":
        accept = TableFilter(config.table_include_list, config.table_exclude_list)
        tables = [t for t in existing if accept(t)]
        signals = signal_table_name(config.signal_data_collection) if config.signal_data_collection else None
        if signals is not None and signals not in tables and signals in existing:
            tables.append(signals)  # as Debezium does: signals arrive through the stream
        if not tables:
            raise ConfigError(
                "publication.autocreate.mode=filtered found no table matching table.include.list; "
                "fix the include/exclude lists or create the publication yourself")
    missing = tables_without_identity(catalog)
    if tables is not None:
        missing = [t for t in missing if t in tables]
    via_root = config.publish_via_partition_root
    if not missing:
        catalog.create_publication(name, tables, via_partition_root=via_root)
        log.info("publication_created", publication=name, mode=mode, tables=tables, publish_via_partition_root=via_root)
        return
    full = [t for t in (tables if tables is not None else existing) if t not in missing]
    _create(catalog, name, full, None, via_root)
    _create(catalog, insert_only_name(name), missing, "insert, truncate", via_root)
    log.info("publication_created", publication=name, mode=mode, tables=full, publish_via_partition_root=via_root)
    log.warning("publication_insert_only", publication=insert_only_name(name), tables=missing,
                detail="these tables have no replica identity: cdcd publishes only their inserts and truncates, "
                       "so the application's UPDATE and DELETE on them keep working. To capture updates and "
                       f"deletes too: {FIX}, then move them into {name} (ALTER PUBLICATION ... ADD TABLE) and out "
                       f"of {insert_only_name(name)}. Tables created later are not added to {name} by cdcd")


def _create(catalog: Catalog, name: str, tables: list[str], publish: str | None, via_root: bool) -> None:
    stmt = sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(name))
    if tables:
        stmt = sql.SQL("{} FOR TABLE {}").format(stmt, sql.SQL(", ").join(
            sql.Identifier(*t.split(".", 1)) for t in tables))
    options = [sql.SQL("publish = {}").format(sql.Literal(publish))] if publish else []
    if via_root:
        options.append(sql.SQL("publish_via_partition_root = true"))
    if options:
        stmt = sql.SQL("{} WITH ({})").format(stmt, sql.SQL(", ").join(options))
    try:
        catalog.conn.execute(stmt)
    except psycopg.Error as exc:
        hint = (" (cdcd's user may not create it: create the publication as a superuser, "
                "or set publication.autocreate.mode=disabled)" if is_permanent_sqlstate(exc.sqlstate) else "")
        raise SourceError(f"cannot create publication {name!r}: {str(exc).strip()}{hint}") from exc

