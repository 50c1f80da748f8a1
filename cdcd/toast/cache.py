"""Real values for unchanged TOAST columns: an on-disk cache, or a re-read by primary key.

pgoutput does not send a TOASTed value an UPDATE left alone (tuple kind
``u``, ``UNCHANGED_TOAST``); Debezium emits ``__debezium_unavailable_value``
instead. ``toast.handling.mode`` decides what cdcd does:

- ``placeholder`` (default): the same as Debezium; nothing here runs.
- ``cache``: ``ToastStore`` keeps the last value seen of every large column
  (text of at least ``toast.cache.min.bytes``: only variable-length types get
  that big, and PostgreSQL moves values out of line only above ~2 kB) per
  (table OID, primary key, column) in one SQLite file, bounded by
  ``toast.cache.max.bytes`` (least recently used entries go first).
  ``CacheFiller`` fills ``u`` columns from it before the envelope is built.
- ``refetch``: ``Refetcher`` reads the current value by primary key over the
  catalog connection; it can be newer than the change being emitted.

A miss (or a row gone by the time of a refetch) keeps the placeholder and is
counted. The cache stays correct across crashes and restarts by two rules:

1. every entry records the LSN of the change that wrote it, and a change at
   a lower LSN (a transaction replayed after a crash) never reads it;
2. the file records the position up to which it has seen every change
   (``on_position``: the LSN confirmed to PostgreSQL); a session that starts
   beyond it (a new slot, a snapshot, changes streamed elsewhere) empties it.

Writes are buffered and applied in batches (``executemany``) in one SQLite
transaction, committed at each PostgreSQL COMMIT that wrote something.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson
import psycopg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg import sql

from cdcd.errors import ConfigError, SourceUnavailable
from cdcd.decode.messages import UNCHANGED_TOAST, Delete, Insert, Relation, TupleData, Update, Value

log = structlog.get_logger("cdcd.toast")

MODES: Final = ("placeholder", "cache", "refetch")
DEFAULT_FILE: Final = "cdcd-toast-{slot}.sqlite"
_EVICT_TO: Final = 0.9  # evict down to this share of max.bytes, so eviction is not per commit
_FLUSH_OPS: Final = 1000  # apply buffered writes at least this often within a big transaction

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entry (
    rel INTEGER NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, typ INTEGER NOT NULL,
    lsn INTEGER NOT NULL, seq INTEGER NOT NULL, size INTEGER NOT NULL, value NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS entry_key ON entry (rel, pk, col);
CREATE INDEX IF NOT EXISTS entry_seq ON entry (seq, size);
CREATE TABLE IF NOT EXISTS rel (rel INTEGER PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value);
INSERT OR IGNORE INTO meta VALUES ('bytes', 0), ('owner', NULL), ('position', NULL);
CREATE TRIGGER IF NOT EXISTS entry_ins AFTER INSERT ON entry
    BEGIN UPDATE meta SET value = value + NEW.size WHERE name = 'bytes'; END;
CREATE TRIGGER IF NOT EXISTS entry_del AFTER DELETE ON entry
    BEGIN UPDATE meta SET value = value - OLD.size WHERE name = 'bytes'; END;
CREATE TRIGGER IF NOT EXISTS entry_upd AFTER UPDATE OF size ON entry
    BEGIN UPDATE meta SET value = value - OLD.size + NEW.size WHERE name = 'bytes'; END;
"""
_PUT: Final = ("INSERT INTO entry (rel, pk, col, typ, lsn, seq, size, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (rel, pk, col) DO UPDATE SET typ = excluded.typ, lsn = excluded.lsn, "
               "seq = excluded.seq, size = excluded.size, value = excluded.value")
_TOUCH: Final = "UPDATE entry SET seq = ? WHERE rowid = ?"
_KEEP_ONLY: Final = "DELETE FROM entry WHERE rel = ? AND pk = ? AND col NOT IN (SELECT value FROM json_each(?))"
_FORGET_ROW: Final = "DELETE FROM entry WHERE rel = ? AND pk = ?"

# Primary key columns in key order, for tables whose Relation message flags every column (FULL).
_PRIMARY_KEY: Final = """
SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord
"""
# The walsender prints values with these settings (cdcd.wire.replication.SESSION_OPTIONS).
_SESSION: Final = ("SELECT set_config('bytea_output', 'hex', false), set_config('extra_float_digits', '3', false), "
                   "set_config('IntervalStyle', 'postgres', false), set_config('DateStyle', 'ISO', false), "
                   "set_config('TimeZone', 'UTC', false)")


def default_path(slot: str, env: dict[str, str] | None = None) -> Path:
    """``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``) when set, else the working directory."""
    env = dict(os.environ) if env is None else env
    base = env.get("STATE_DIRECTORY", "").split(":")[0] or "."
    return Path(base) / DEFAULT_FILE.format(slot=slot)


def _size(value: str | bytes) -> int:
    return len(value) if isinstance(value, bytes) or value.isascii() else len(value.encode())


# -- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    typ: int
    """Type OID of the column when the value was written: a type change is a miss."""
    lsn: int
    value: str | bytes
    rowid: int


class ToastStore:
    """The SQLite file: entries per (relation OID, key JSON, column), and the seen-up-to position.

    Not thread-safe; one pipeline uses it at a time. ``shared`` hands out one
    store per file for the process, so sessions after a reconnect reuse it.
    """

    _shared: ClassVar[dict[Path, ToastStore]] = {}
    _lock: ClassVar = threading.Lock()

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        try:
            self._db = sqlite3.connect(str(path), isolation_level="DEFERRED", check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"toast.cache.path {path}: cannot open the TOAST cache: {exc} "
                              "(give a writable file, or set toast.handling.mode=placeholder)") from exc
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._dirty = False
        self._seq = int(self._db.execute("SELECT coalesce(max(seq), 0) FROM entry").fetchone()[0])
        self._rels = {int(r[0]) for r in self._db.execute("SELECT DISTINCT rel FROM entry")}
        self.evictions = 0

    @classmethod
    def shared(cls, path: Path, max_bytes: int) -> ToastStore:
        key = path.resolve()
        with cls._lock:
            store = cls._shared.get(key)
            if store is None:
                store = cls._shared[key] = cls(path, max_bytes)
                atexit.register(store.close)
            store.max_bytes = max_bytes
            return store

    # -- session boundaries ------------------------------------------------------------------

    def begin(self, owner: str, start_lsn: int) -> str | None:
        """Drop what an earlier session left uncommitted; empty the cache when it cannot be trusted.

        Returns why it was emptied, or None. ``owner`` names the source (system,
        database, slot, table lists): another one means other rows.
        """
        self.rollback()
        meta = dict(self._db.execute("SELECT name, value FROM meta"))
        reason = None
        if meta["owner"] is not None and meta["owner"] != owner:
            reason = "it belongs to another source, slot or table selection"
        elif meta["position"] is not None and start_lsn > int(meta["position"]):
            reason = "streaming starts after the last position it saw (a new slot or snapshot, or changes it missed)"
        if reason is not None:
            self._db.execute("DELETE FROM entry")
            self._db.execute("DELETE FROM rel")
            self._rels.clear()
        if reason is not None or meta["owner"] is None or meta["position"] is None:
            self._db.executemany("UPDATE meta SET value = ? WHERE name = ?",
                                 ((owner, "owner"), (start_lsn, "position")))
        self._db.commit()
        return reason

    def commit(self, position: int | None = None) -> None:
        """Apply buffered writes, evict over ``max_bytes``, record ``position`` and commit."""
        self._apply()
        if self.held_bytes > self.max_bytes:
            self._evict()
        if position is not None:
            self._db.execute("UPDATE meta SET value = ? WHERE name = 'position' AND (value IS NULL OR value < ?)",
                             (position, position))
        self._db.commit()
        self._dirty = False

    def rollback(self) -> None:
        self._ops.clear()
        self._db.rollback()
        self._dirty = False

    def close(self) -> None:
        try:
            self.rollback()
            self._db.close()
        except sqlite3.Error:
            pass

    @property
    def dirty(self) -> bool:
        return self._dirty or bool(self._ops)

    @property
    def held_bytes(self) -> int:
        """Value bytes held (committed or in the open SQLite transaction)."""
        self._apply()
        return int(self._db.execute("SELECT value FROM meta WHERE name = 'bytes'").fetchone()[0])

    @property
    def position(self) -> int | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'position'").fetchone()
        return None if row[0] is None else int(row[0])

    # -- rows --------------------------------------------------------------------------------

    def row(self, rel: int, pk: str) -> dict[str, Entry]:
        """Every entry of one row, by column name."""
        if rel not in self._rels:
            return {}
        self._apply()
        cur = self._db.execute("SELECT col, typ, lsn, value, rowid FROM entry WHERE rel = ? AND pk = ?", (rel, pk))
        return {str(c): Entry(int(t), int(lsn), v, int(rowid)) for c, t, lsn, v, rowid in cur}

    def put(self, rel: int, pk: str, col: str, typ: int, lsn: int, value: str | bytes) -> None:
        self._seq += 1
        self._rels.add(rel)
        self._op(_PUT, (rel, pk, col, typ, lsn, self._seq, _size(value), value))

    def touch(self, entry: Entry) -> None:
        """Mark an entry as used now, so eviction takes it last."""
        self._seq += 1
        self._op(_TOUCH, (self._seq, entry.rowid))

    def keep_only(self, rel: int, pk: str, cols: Iterable[str]) -> None:
        """Delete the row's entries for every column but ``cols`` (which were sent small or are unknown)."""
        if rel in self._rels:
            self._op(_KEEP_ONLY, (rel, pk, orjson.dumps(list(cols)).decode()))

    def forget_row(self, rel: int, pk: str) -> None:
        if rel in self._rels:
            self._op(_FORGET_ROW, (rel, pk))

    def forget_table(self, rel: int) -> None:
        if rel in self._rels:
            self._apply()
            self._db.execute("DELETE FROM entry WHERE rel = ?", (rel,))
            self._rels.discard(rel)
            self._dirty = True

    def check_key(self, rel: int, key: str) -> None:
        """Forget the table's entries when its key columns are not those they were stored under."""
        row = self._db.execute("SELECT key FROM rel WHERE rel = ?", (rel,)).fetchone()
        if row is not None and row[0] == key:
            return
        self._apply()
        if row is not None:
            self._db.execute("DELETE FROM entry WHERE rel = ?", (rel,))
            self._rels.discard(rel)
        self._db.execute("INSERT INTO rel VALUES (?, ?) ON CONFLICT (rel) DO UPDATE SET key = excluded.key", (rel, key))
        self._dirty = True

    # -- internals ---------------------------------------------------------------------------

    def _op(self, statement: str, params: tuple[Any, ...]) -> None:
        self._ops.append((statement, params))
        if len(self._ops) >= _FLUSH_OPS:
            self._apply()

    def _apply(self) -> None:
        """Run buffered writes in order, consecutive ones of a kind as one ``executemany``."""
        ops = self._ops
        if not ops:
            return
        self._ops = []
        start = 0
        for i in range(1, len(ops) + 1):
            if i == len(ops) or ops[i][0] is not ops[start][0]:
                self._db.executemany(ops[start][0], [p for _, p in ops[start:i]])
                start = i
        self._dirty = True

    def _evict(self) -> None:
        excess = self.held_bytes - int(self.max_bytes * _EVICT_TO)
        freed, cutoff = 0, None
        for seq, size in self._db.execute("SELECT seq, size FROM entry ORDER BY seq"):
            freed += int(size)
            cutoff = seq
            if freed >= excess:
                break
        if cutoff is not None:
            self.evictions += self._db.execute("DELETE FROM entry WHERE seq <= ?", (cutoff,)).rowcount


# -- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToastMetrics:
    """``cdcd_toast_*``: registered once per registry (sessions come and go, the registry stays)."""

    hits: Counter
    misses: Counter
    evictions: Counter
    cache_bytes: Gauge
    refetched: Counter
    refetch_missing: Counter

    @staticmethod
    def of(registry: CollectorRegistry) -> ToastMetrics:
        found = _METRICS.get(registry)
        if found is None:
            refetch = Counter("cdcd_toast_refetch_total", "Unchanged TOAST values read again by primary key, "
                              "by result (found, missing: the row or column is gone)", ("result",), registry=registry)
            found = _METRICS[registry] = ToastMetrics(
                Counter("cdcd_toast_cache_hits_total", "Unchanged TOAST values filled from the cache", registry=registry),
                Counter("cdcd_toast_cache_misses_total", "Unchanged TOAST values not in the cache (the placeholder "
                        "was emitted)", registry=registry),
                Counter("cdcd_toast_cache_evictions_total", "Cache entries evicted to stay under "
                        "toast.cache.max.bytes", registry=registry),
                Gauge("cdcd_toast_cache_bytes", "Value bytes held by the TOAST cache", registry=registry),
                refetch.labels(result="found"), refetch.labels(result="missing"))
        return found


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, ToastMetrics] = weakref.WeakKeyDictionary()


# -- which columns identify a row --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    relation: Relation
    key: tuple[int, ...] | None
    """Indexes of the key columns in the tuple; None when rows cannot be told apart."""

    def key_of(self, values: TupleData | None) -> str | None:
        if values is None or self.key is None:
            return None
        key = [values[i] for i in self.key]
        if any(v is UNCHANGED_TOAST or v is None for v in key):
            return None
        return orjson.dumps([v.hex() if isinstance(v, bytes) else v for v in key]).decode()


class _Plans:
    """Key columns per relation: the replica identity, or the primary key under FULL/NOTHING."""

    def __init__(self, conn: psycopg.Connection[Any], on_new: Callable[[_Plan], None] | None = None) -> None:
        self._conn = conn
        self._on_new = on_new
        self._plans: dict[int, _Plan] = {}

    def __call__(self, relation: Relation) -> _Plan:
        plan = self._plans.get(relation.oid)
        if plan is not None and plan.relation is relation:  # the decoder makes a new one per Relation message
            return plan
        names = [c.name for c in relation.columns]
        if relation.replica_identity in ("d", "i"):
            key = [i for i, c in enumerate(relation.columns) if c.is_key]
        else:
            try:
                pk = [str(r[0]) for r in self._conn.execute(_PRIMARY_KEY, (relation.oid,)).fetchall()]
            except psycopg.OperationalError as exc:
                raise SourceUnavailable(f"catalog connection lost: {exc}") from exc
            key = [names.index(n) for n in pk] if pk and all(n in names for n in pk) else []
        plan = self._plans[relation.oid] = _Plan(relation, tuple(key) or None)
        if self._on_new is not None:
            self._on_new(plan)
        return plan


Change = Insert | Update | Delete


class _Misses:
    """Logs the first miss per table and column (the counter has them all)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._seen: set[tuple[int, str]] = set()

    def __call__(self, relation: Relation, column: str, **fields: Any) -> None:
        if (relation.oid, column) not in self._seen:
            self._seen.add((relation.oid, column))
            log.info(self._what, table=f"{relation.namespace}.{relation.name}", column=column, **fields,
                     hint="the placeholder was emitted; later misses of this column are only counted")


class ToastHandler:
    """What the pipeline calls: ``change`` for every captured row change, the rest at boundaries."""

    def change(self, msg: Change, lsn: int) -> Change:
        """``msg``, with values in place of ``UNCHANGED_TOAST`` where they could be found."""
        raise NotImplementedError

    def truncate(self, relation: Relation) -> None:
        """The table was truncated."""

    def schema_changed(self, oid: int) -> None:
        """DDL changed the table (a ``cdcd.ddl`` message)."""

    def commit(self, end_lsn: int) -> None:
        """A PostgreSQL transaction ended at ``end_lsn``."""

    def on_position(self, lsn: int) -> None:
        """Everything up to ``lsn`` was seen; it is about to be confirmed to PostgreSQL."""


# -- cache mode --------------------------------------------------------------------------------


class CacheFiller(ToastHandler):
    """``toast.handling.mode=cache``: remember large values, fill ``u`` columns from them."""

    def __init__(self, store: ToastStore, conn: psycopg.Connection[Any], min_bytes: int,
                 metrics: ToastMetrics) -> None:
        self.store = store
        self.min_bytes = min_bytes
        self.metrics = metrics
        self._plans = _Plans(conn, self._check_key)
        self._miss = _Misses("toast_cache_miss")
        self._evictions = store.evictions

    def change(self, msg: Change, lsn: int) -> Change:
        """Fill from the cache; the cache learns the row."""
        relation = msg.relation
        plan = self._plans(relation)
        if plan.key is None:
            return msg
        store, rel = self.store, relation.oid
        if type(msg) is Insert:
            key = plan.key_of(msg.new)
            if key is not None:
                self._remember(relation, key, msg.new, lsn)
            return msg
        if type(msg) is Delete:
            key = plan.key_of(msg.old)
            if key is not None:
                store.forget_row(rel, key)
            return msg
        assert isinstance(msg, Update)
        new_key = plan.key_of(msg.new)
        old_key = plan.key_of(msg.old) if msg.old_kind == "K" or msg.old_kind == "O" else None
        key = old_key or new_key
        if key is None:
            return msg
        new = msg.new
        if UNCHANGED_TOAST in new and msg.old_kind != "O":  # a full old image is used by the envelope
            new = self._fill(relation, key, new, lsn)
        if new_key is None:
            return msg if new is msg.new else replace(msg, new=new)
        if old_key is not None and old_key != new_key:
            store.forget_row(rel, old_key)
            self._remember(relation, new_key, new, lsn)
        else:
            unchanged = [c.name for c, v in zip(relation.columns, msg.new) if v is UNCHANGED_TOAST]
            self._remember(relation, new_key, msg.new, lsn, keep=unchanged)
        return msg if new is msg.new else replace(msg, new=new)

    def truncate(self, relation: Relation) -> None:
        self.store.forget_table(relation.oid)

    def schema_changed(self, oid: int) -> None:
        # e.g. ALTER COLUMN ... TYPE ... USING rewrites values without a change event.
        self.store.forget_table(oid)

    def commit(self, end_lsn: int) -> None:
        if self.store.dirty:  # make the transaction's writes durable, with the position
            self.store.commit(end_lsn)
            self._sync_metrics()

    def on_position(self, lsn: int) -> None:
        position = self.store.position
        if self.store.dirty or position is None or lsn > position:
            self.store.commit(lsn)
            self._sync_metrics()

    def _check_key(self, plan: _Plan) -> None:
        names = [] if plan.key is None else [plan.relation.columns[i].name for i in plan.key]
        self.store.check_key(plan.relation.oid, orjson.dumps(names).decode())

    def _fill(self, relation: Relation, key: str, new: TupleData, lsn: int) -> TupleData:
        entries = self.store.row(relation.oid, key)
        out: list[Value] = list(new)
        for i, (column, value) in enumerate(zip(relation.columns, new)):
            if value is not UNCHANGED_TOAST:
                continue
            entry = entries.get(column.name)
            if entry is not None and entry.typ == column.type_oid and entry.lsn <= lsn:
                out[i] = entry.value
                self.store.touch(entry)
                self.metrics.hits.inc()
            else:
                self.metrics.misses.inc()
                self._miss(relation, column.name, cached=entry is not None)
        return tuple(out)

    def _remember(self, relation: Relation, key: str, values: TupleData, lsn: int,
                  keep: list[str] | None = None) -> None:
        store, rel, low = self.store, relation.oid, self.min_bytes
        big = []
        for column, value in zip(relation.columns, values):
            if isinstance(value, (str, bytes)) and len(value) >= low:
                store.put(rel, key, column.name, column.type_oid, lsn, value)
                big.append(column.name)
        if keep is not None:
            store.keep_only(rel, key, keep + big)

    def _sync_metrics(self) -> None:
        evicted, self._evictions = self.store.evictions - self._evictions, self.store.evictions
        if evicted:
            self.metrics.evictions.inc(evicted)
        self.metrics.cache_bytes.set(self.store.held_bytes)


# -- refetch mode ------------------------------------------------------------------------------


class Refetcher(ToastHandler):
    """``toast.handling.mode=refetch``: ``SELECT`` the ``u`` columns by key, as pgoutput prints them.

    The value read is the row's current one, which may be newer than the
    change being emitted when the row changed again since.
    """

    def __init__(self, conn: psycopg.Connection[Any], metrics: ToastMetrics) -> None:
        self.conn = conn
        self.metrics = metrics
        self._plans = _Plans(conn)
        self._miss = _Misses("toast_refetch_missing")
        self._queries: dict[tuple[int, tuple[int, ...]], tuple[Relation, sql.Composed]] = {}
        self._session_set = False

    def change(self, msg: Change, lsn: int) -> Change:
        if type(msg) is not Update or msg.old_kind == "O" or UNCHANGED_TOAST not in msg.new:
            return msg
        relation, new = msg.relation, msg.new
        plan = self._plans(relation)
        missing = tuple(i for i, v in enumerate(new) if v is UNCHANGED_TOAST)
        values = self._fetch(plan, missing, new) if plan.key_of(new) is not None else None
        if values is None:
            self.metrics.refetch_missing.inc(len(missing))
            for i in missing:
                self._miss(relation, relation.columns[i].name)
            return msg
        out: list[Value] = list(new)
        for i, value in zip(missing, values):
            out[i] = value
        self.metrics.refetched.inc(len(missing))
        return replace(msg, new=tuple(out))

    def _fetch(self, plan: _Plan, missing: tuple[int, ...], new: TupleData) -> list[str | None] | None:
        relation = plan.relation
        assert plan.key is not None
        cached = self._queries.get((relation.oid, missing))
        if cached is not None and cached[0] is relation:
            query = cached[1]
        else:
            cols = relation.columns
            query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                sql.SQL(", ").join(sql.Identifier(cols[i].name) for i in missing),
                sql.Identifier(relation.namespace, relation.name),
                sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(cols[i].name)) for i in plan.key))
            self._queries[(relation.oid, missing)] = (relation, query)
        params = [new[i] for i in plan.key]
        try:
            if not self._session_set:
                self.conn.execute(_SESSION)
                self._session_set = True
            with self.conn.cursor() as cur:
                cur.execute(query, params)
                result = cur.pgresult
                if result is None or result.ntuples == 0:
                    return None
                return [None if (v := result.get_value(0, c)) is None else bytes(v).decode()
                        for c in range(result.nfields)]
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(f"catalog connection lost while re-reading a TOAST value: {exc}") from exc
        except psycopg.Error as exc:  # the table or column is gone or renamed since the change
            log.debug("toast_refetch_failed", table=f"{relation.namespace}.{relation.name}", error=str(exc).strip())
            return None


# -- wiring ------------------------------------------------------------------------------------

# Tables whose rows can hold out-of-line values, under REPLICA IDENTITY DEFAULT (no old values).
_TOASTABLE = """
SELECT n.nspname || '.' || c.relname, string_agg(a.attname, ', ' ORDER BY a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.attlen = -1 AND a.attstorage <> 'p'
WHERE c.relkind = 'r' AND c.relreplident = 'd' AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND (%(all)s OR (n.nspname, c.relname) IN (
        SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %(pub)s))
GROUP BY 1 ORDER BY 1
"""


def check(config: Any, conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """``cdcd check`` lines (name, status, detail): captured tables whose updates may lack TOAST values."""
    from cdcd.source.filters import TableFilter

    accept = TableFilter(config.table_include_list, config.table_exclude_list)
    row = conn.execute("SELECT puballtables FROM pg_publication WHERE pubname = %s",
                       (config.publication_name,)).fetchone()
    tables = [(str(t), str(cols)) for t, cols in conn.execute(
        _TOASTABLE, {"all": row is None or bool(row[0]), "pub": config.publication_name}).fetchall() if accept(str(t))]
    mode = config.toast_handling_mode
    if mode != "placeholder":
        return [("toast", "ok", f"unchanged TOAST values of {len(tables)} table(s) with REPLICA IDENTITY DEFAULT "
                 f"are filled by toast.handling.mode={mode}")]
    return [("toast", "warn", f"{table} ({cols}) has REPLICA IDENTITY DEFAULT: an UPDATE that leaves a TOASTed "
             f"value alone emits {config.unavailable_value_placeholder!r} for it; ALTER TABLE {table} REPLICA "
             "IDENTITY FULL, or set toast.handling.mode=cache (docs/toast-and-ddl.md)") for table, cols in tables]



def toast_handler(config: Any, conn: psycopg.Connection[Any], registry: CollectorRegistry, *,
                  system_id: str | None, database: str, start_lsn: int) -> ToastHandler | None:
    """The handler ``toast.handling.mode`` asks for (None: placeholder), ready for a session from ``start_lsn``."""
    mode = config.toast_handling_mode
    if mode == "refetch":
        return Refetcher(conn, ToastMetrics.of(registry))
    if mode != "cache":
        return None
    if config.toast_cache_max_bytes <= 0 or config.toast_cache_min_bytes <= 0:
        raise ConfigError("toast.cache.max.bytes and toast.cache.min.bytes must be positive")
    path = Path(config.toast_cache_path) if config.toast_cache_path else default_path(config.slot_name)
    store = ToastStore.shared(path, config.toast_cache_max_bytes)
    # Rows of another server, database, slot or table selection are not these rows.
    owner = orjson.dumps([system_id, database, config.slot_name, config.table_include_list,
                          config.table_exclude_list]).decode()
    reason = store.begin(owner, start_lsn)
    if reason is not None:
        log.warning("toast_cache_emptied", path=str(path), reason=reason)
    log.info("toast_cache_opened", path=str(path), bytes=store.held_bytes, max_bytes=store.max_bytes)
    filler = CacheFiller(store, conn, config.toast_cache_min_bytes, ToastMetrics.of(registry))
    filler._sync_metrics()
    return filler

