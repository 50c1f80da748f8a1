"""The publications cdcd streams from, created so that they never break the application's writes.

PostgreSQL rejects UPDATE and DELETE on a table that a publication publishes updates or
deletes of, unless the table has a replica identity (a primary key, ``REPLICA IDENTITY
USING INDEX`` or ``FULL``). Debezium's ``FOR ALL TABLES`` publication does that to every
table without one, including tables created later. cdcd creates two publications instead,
both streamed (pgoutput publishes an action of a table when any of them does, once):

* ``<publication.name>``: ``FOR ALL TABLES`` (or the filtered list) with ``publish =
  'insert, truncate'``. It never blocks a write and captures the inserts and truncates of
  every table, including each table created later, from its first row.
* ``<publication.name>_updates``: ``publish = 'update, delete'`` of exactly the tables of the
  first that have a replica identity, as leaf tables (``ONLY``; a partition's own identity is
  what PostgreSQL checks). Its comment names the first publication: that is how cdcd and its
  event trigger recognise the pair.

As Debezium's publication does, both leave out the actions a given ``skipped.operations``
skips (``publish_actions``).

An event trigger (``cdcd_publication_sync``, installed by cdcd when its user may) keeps the
second in step at ``ddl_command_end`` of every command that can create a table or change a
replica identity, in the DDL's own transaction: a table gains its membership in the same
commit that gives it an identity, and loses it in the same commit that takes it away, so
no change is missed and no write is ever rejected. Without the trigger cdcd refreshes the
membership at start and every few seconds, and warns about the window. A publication the
user created is the user's choice: cdcd warns about tables it blocks and changes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import structlog
from psycopg import sql

from cdcd.config import Config
from cdcd.errors import ConfigError, SourceError, is_permanent_sqlstate
from cdcd.source.catalog import Catalog, connect
from cdcd.source.filters import TableFilter
from cdcd.source.signal_table import signal_table_name

log = structlog.get_logger("cdcd.publication")

UPDATES_SUFFIX: Final = "_updates"
COMMENT_PREFIX: Final = "cdcd: updates and deletes, of the tables with a replica identity, of publication "
TRIGGER: Final = "cdcd_publication_sync"
FUNCTION_SCHEMA: Final = "public"
REFRESH_INTERVAL_S: Final = 5.0
# Every command that can create a leaf table or give or take a replica identity.
SYNC_TAGS: Final = ("CREATE TABLE", "CREATE TABLE AS", "SELECT INTO", "ALTER TABLE", "DROP INDEX")

FIX = ("add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL (or USING INDEX on a unique, "
       "non-null index)")

# A relation has a replica identity PostgreSQL accepts for UPDATE/DELETE (CheckCmdReplicaIdentity).
_HAS_IDENTITY = """(c.relreplident = 'f'
  OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                                        WHERE i.indrelid = c.oid AND i.indisprimary))
  OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                                        WHERE i.indrelid = c.oid AND i.indisreplident)))"""

# Leaf tables a publication may hold (is_publishable_class), as schema.table.
_LEAVES = """
SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND c.oid >= 16384
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND NOT {identity}
ORDER BY 1
"""

# What the updates publication ``{b}`` must add and drop to hold exactly the leaf tables of
# publication ``{a}`` that have a replica identity. Shared by the event trigger (PL/pgSQL
# variables) and the refresh without it (query parameters).
_DIFF = """
WITH desired AS (
  SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND c.oid >= 16384
    AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND {identity}
    AND ((SELECT p.puballtables FROM pg_catalog.pg_publication p WHERE p.oid = {a})
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r WHERE r.prpubid = {a}
                    AND (r.prrelid = c.oid OR (c.relispartition AND r.prrelid IN (
                         SELECT pg_catalog.pg_partition_ancestors(c.oid))))))
), present AS (
  SELECT r.prrelid AS oid FROM pg_catalog.pg_publication_rel r WHERE r.prpubid = {b}
)
SELECT x.action, n.nspname, c.relname FROM (
  SELECT 'ADD' AS action, d.oid FROM desired d WHERE NOT EXISTS (SELECT 1 FROM present p WHERE p.oid = d.oid)
  UNION ALL
  SELECT 'DROP', p.oid FROM present p WHERE NOT EXISTS (SELECT 1 FROM desired d WHERE d.oid = p.oid)
) x JOIN pg_catalog.pg_class c ON c.oid = x.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
ORDER BY 1 DESC, 2, 3
"""

# The pairs cdcd created in this database: the updates publication's comment names the other.
_PAIRS = """
SELECT a.oid AS a, b.oid AS b, b.pubname AS bname
FROM pg_catalog.pg_publication b
JOIN pg_catalog.pg_description d ON d.objoid = b.oid AND d.classoid = 'pg_catalog.pg_publication'::pg_catalog.regclass
JOIN pg_catalog.pg_publication a ON d.description = {prefix} || a.pubname
"""

# Runs inside the DDL's transaction, as the owner (a superuser: ALTER PUBLICATION needs the
# table's owner); search_path pinned so nothing the session defines is used. An error
# leaves the membership as it was (a WARNING) and never fails the application's DDL.
_SYNC_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.cdcd_publication_sync() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  pair record;
  change record;
BEGIN
  FOR pair IN {pairs} LOOP
    FOR change IN {diff} LOOP
      BEGIN
        EXECUTE format('ALTER PUBLICATION %I %s TABLE ONLY %I.%I', pair.bname, change.action,
                       change.nspname, change.relname);
      EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'cdcd: publication % not updated (% %.%): %', pair.bname, change.action,
          change.nspname, change.relname, sqlerrm;
      END;
    END LOOP;
  END LOOP;
END
$fn$
"""

_TRIGGER = """
CREATE EVENT TRIGGER cdcd_publication_sync ON ddl_command_end WHEN TAG IN ({tags})
  EXECUTE FUNCTION {schema}.cdcd_publication_sync()
"""


@dataclass(frozen=True)
class Layout:
    """What cdcd streams from and how the updates publication is kept in step."""

    names: tuple[str, ...]
    updates: str | None = None  # cdcd's updates publication, when the pair is cdcd's
    trigger: bool = False  # the event trigger keeps it in step (no window)


def publish_actions(config: Config) -> tuple[str, str]:
    """The ``publish`` lists of cdcd's two publications: without the skipped operations, when given.

    As Debezium builds its publication: an explicitly given ``skipped.operations`` leaves those
    actions out of ``publish``, so pgoutput never sends them, and a transaction of only such
    changes is not sent at all (no BEGIN/END in the transaction metadata, no primary-key
    change as delete and create under ``u``). When it is not given (the default ``t``),
    everything is published and skipped in cdcd. Inserts stay published while a signal table is
    configured: signals and incremental-snapshot windows arrive as inserts.
    """
    skipped = set(config.skipped_operations) if "skipped.operations" in config.given else set()
    keep_inserts = "c" not in skipped or bool(config.signal_data_collection)
    main = [a for a, keep in (("insert", keep_inserts), ("truncate", "t" not in skipped)) if keep]
    updates = [a for a, op in (("update", "u"), ("delete", "d")) if op not in skipped]
    return ", ".join(main), ", ".join(updates)


def updates_name(name: str) -> str:
    return f"{name}{UPDATES_SUFFIX}"


def tables_without_identity(catalog: Catalog) -> list[str]:
    """Leaf tables whose UPDATE/DELETE PostgreSQL rejects once a publication publishes them."""
    return [str(r[0]) for r in catalog.conn.execute(_LEAVES.format(identity=_HAS_IDENTITY)).fetchall()]


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


def _is_pair(catalog: Catalog, name: str) -> bool:
    row = catalog.conn.execute(
        "SELECT 1 FROM pg_catalog.pg_publication b JOIN pg_catalog.pg_description d ON d.objoid = b.oid "
        "AND d.classoid = 'pg_catalog.pg_publication'::pg_catalog.regclass "
        "WHERE b.pubname = %s AND d.description = %s", (updates_name(name), COMMENT_PREFIX + name)).fetchone()
    return row is not None


def trigger_installed(catalog: Catalog) -> bool:
    row = catalog.conn.execute(
        "SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = %s AND evtenabled <> 'D'", (TRIGGER,)).fetchone()
    return row is not None


def in_recovery(catalog: Catalog) -> bool:
    row = catalog.conn.execute("SELECT pg_catalog.pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def publication_names(config: Config, catalog: Catalog) -> list[str]:
    return list(layout(config, catalog).names)


def layout(config: Config, catalog: Catalog) -> Layout:
    name = config.publication_name
    if not _is_pair(catalog, name):
        return Layout(names=(name,))
    return Layout(names=(name, updates_name(name)), updates=updates_name(name), trigger=trigger_installed(catalog))


def install_trigger(catalog: Catalog) -> None:
    """Create (or replace) the sync function and its event trigger; needs a superuser."""
    pairs = sql.SQL(_PAIRS).format(prefix=sql.Literal(COMMENT_PREFIX))
    diff = sql.SQL(_DIFF.format(identity=_HAS_IDENTITY, a="{a}", b="{b}")).format(
        a=sql.SQL("pair.a"), b=sql.SQL("pair.b"))
    schema = sql.Identifier(FUNCTION_SCHEMA)
    tags = sql.SQL(", ").join(sql.Literal(t) for t in SYNC_TAGS)
    with catalog.conn.transaction():
        catalog.conn.execute(sql.SQL(_SYNC_FUNCTION).format(schema=schema, pairs=pairs, diff=diff))
        catalog.conn.execute(sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(sql.Identifier(TRIGGER)))
        catalog.conn.execute(sql.SQL(_TRIGGER).format(schema=schema, tags=tags))


def refresh(catalog: Catalog, name: str) -> list[tuple[str, str]]:
    """Bring ``<name>_updates`` in step now; returns the (action, table) changes made."""
    bname = updates_name(name)
    oids = catalog.conn.execute("SELECT (SELECT oid FROM pg_catalog.pg_publication WHERE pubname = %s), "
                                "(SELECT oid FROM pg_catalog.pg_publication WHERE pubname = %s)",
                                (name, bname)).fetchone()
    if oids is None or oids[0] is None or oids[1] is None:
        return []
    query = _DIFF.format(identity=_HAS_IDENTITY, a="%(a)s", b="%(b)s")
    done = []
    for action, schema, table in catalog.conn.execute(query, {"a": oids[0], "b": oids[1]}).fetchall():
        stmt = sql.SQL("ALTER PUBLICATION {} {} TABLE ONLY {}").format(
            sql.Identifier(bname), sql.SQL("ADD" if action == "ADD" else "DROP"), sql.Identifier(schema, table))
        try:
            catalog.conn.execute(stmt)
        except psycopg.Error as exc:
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                raise
            log.warning("publication_refresh_failed", publication=bname, action=action, table=f"{schema}.{table}",
                        error=str(exc).strip())
            continue
        done.append((str(action), f"{schema}.{table}"))
    if done:
        log.info("publication_refreshed", publication=bname, changes=[f"{a} {t}" for a, t in done])
    return done


def ensure_publication(config: Config, catalog: Catalog) -> Layout:
    """Create cdcd's pair when ``publication.name`` does not exist; return what to stream from.

    Under a session advisory lock: two instances started together on a new database
    would otherwise both try to create the pair (and the event trigger), and the second
    would fail on the first's publication; the second now waits, then finds the pair.
    """
    key = f"cdcd publication {config.publication_name}"
    catalog.conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
    try:
        return _ensure_publication(config, catalog)
    finally:
        catalog.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


def _ensure_publication(config: Config, catalog: Catalog) -> Layout:
    name = config.publication_name
    if catalog.publication(name) is not None:
        current = layout(config, catalog)
        if current.updates is None:
            blocked = blocked_tables(catalog, name)
            if blocked:
                # The user's publication: their choice. Say what it does to the application.
                log.warning("publication_blocks_application_writes", publication=name, tables=blocked,
                            detail="PostgreSQL rejects UPDATE and DELETE on these tables while this publication "
                                   f"publishes updates or deletes of them: {FIX}")
            return current
        if in_recovery(catalog):
            return current  # a standby: the primary keeps the pair in step
        return _keep_in_step(catalog, name, current)
    mode = config.publication_autocreate_mode
    if mode == "disabled":
        raise SourceError(
            f"publication {name!r} does not exist and publication.autocreate.mode=disabled: "
            f"CREATE PUBLICATION {name} FOR ALL TABLES (or FOR TABLE ...), or fix publication.name")
    tables: list[str] | None = None
    if mode == "filtered":
        existing = catalog.tables()
        accept = TableFilter(config.table_include_list, config.table_exclude_list)
        tables = [t for t in existing if accept(t)]
        signals = signal_table_name(config.signal_data_collection) if config.signal_data_collection else None
        if signals is not None and signals not in tables and signals in existing:
            tables.append(signals)  # as Debezium does: signals arrive through the stream
        if not tables:
            raise ConfigError(
                "publication.autocreate.mode=filtered found no table matching table.include.list; "
                "fix the include/exclude lists or create the publication yourself")
    via_root = config.publish_via_partition_root
    bname = updates_name(name)
    publish, publish_updates = publish_actions(config)
    try:
        with catalog.conn.transaction():
            catalog.conn.execute(_create(name, tables, publish, via_root))
            catalog.conn.execute(_create(bname, [], publish_updates, via_root))
            catalog.conn.execute(sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(
                sql.Identifier(bname), sql.Literal(COMMENT_PREFIX + name)))
    except psycopg.Error as exc:
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            raise
        hint = (" (cdcd's user may not create it: create the publication as a superuser, "
                "or set publication.autocreate.mode=disabled)" if is_permanent_sqlstate(exc.sqlstate) else "")
        raise SourceError(f"cannot create publication {name!r}: {str(exc).strip()}{hint}") from exc
    log.info("publication_created", publication=name, mode=mode, tables=tables, publish=publish,
             updates_publication=bname, updates_publish=publish_updates, publish_via_partition_root=via_root)
    missing = tables_without_identity(catalog) if publish_updates else []
    if tables is not None:
        missing = [t for t in missing if t in tables]
    if missing:
        log.warning("publication_without_updates", publication=name, tables=missing,
                    detail="these tables have no replica identity: cdcd captures their inserts and truncates only, "
                           "so the application's UPDATE and DELETE on them keep working. To capture their updates "
                           f"and deletes too: {FIX}; cdcd then publishes them from that commit on")
    return _keep_in_step(catalog, name, Layout(names=(name, bname), updates=bname))


def _keep_in_step(catalog: Catalog, name: str, current: Layout) -> Layout:
    """Install the event trigger when missing and possible; bring the membership in step now."""
    if not current.trigger:
        try:
            install_trigger(catalog)
            current = Layout(names=current.names, updates=current.updates, trigger=True)
            log.info("publication_sync_installed", trigger=TRIGGER, publication=current.updates)
        except psycopg.Error as exc:
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                raise
            log.warning("publication_sync_window", publication=current.updates, error=str(exc).strip(),
                        detail=window_detail(name))
    refresh(catalog, name)
    return current


def window_detail(name: str) -> str:
    return (f"cdcd cannot install the event trigger {TRIGGER} (event triggers need a superuser), so it adds "
            f"tables that gain a replica identity to {updates_name(name)} at start and every "
            f"{REFRESH_INTERVAL_S:g} s: their updates and deletes in between are not captured, and while a table "
            f"that lost its identity is still in it the application's UPDATE and DELETE on it fail. For no "
            f"window: run cdcd once with a superuser's DSN (it installs the trigger), or CREATE the "
            f"publications yourself")


def _create(name: str, tables: list[str] | None, publish: str, via_root: bool) -> sql.Composed:
    stmt = sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(name))
    if tables is None:
        stmt = sql.SQL("{} FOR ALL TABLES").format(stmt)
    elif tables:
        stmt = sql.SQL("{} FOR TABLE {}").format(stmt, sql.SQL(", ").join(
            sql.Identifier(*t.split(".", 1)) for t in tables))
    options = [sql.SQL("publish = {}").format(sql.Literal(publish))]
    if via_root:
        options.append(sql.SQL("publish_via_partition_root = true"))
    return sql.SQL("{} WITH ({})").format(stmt, sql.SQL(", ").join(options))


class Refresher:
    """Without the event trigger: refresh the updates publication every few seconds, on its own connection."""

    def __init__(self, dsn: str, name: str, interval_s: float = REFRESH_INTERVAL_S) -> None:
        self.dsn = dsn
        self.name = name
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cdcd-publication-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        catalog: Catalog | None = None
        while not self._stop.wait(self.interval_s):
            try:
                if catalog is None:
                    catalog = Catalog(connect(self.dsn))
                refresh(catalog, self.name)
            except Exception as exc:  # noqa: BLE001 - retried at the next interval; streaming goes on
                log.warning("publication_refresh_failed", publication=updates_name(self.name), error=str(exc))
                if catalog is not None:
                    _close(catalog)
                catalog = None
        if catalog is not None:
            _close(catalog)


def _close(catalog: Any) -> None:
    try:
        catalog.close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass
