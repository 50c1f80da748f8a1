"""The TOAST cache's SQLite file: the last large value of every (table, row key, column).

Entries are per (relation OID, key JSON, column), bounded by
``toast.cache.max.bytes`` (least recently used go first), each with the LSN of
the change that wrote it; the file also records the position up to which it has
seen every change, and which source it belongs to (``begin``). Writes are
buffered and applied in batches (``executemany``) in one SQLite transaction.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from cdcd.errors import ConfigError

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

def default_path(slot: str, env: dict[str, str] | None = None) -> Path:
    """``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``) when set, else the working directory."""
    env = dict(os.environ) if env is None else env
    base = env.get("STATE_DIRECTORY", "").split(":")[0] or "."
    return Path(base) / DEFAULT_FILE.format(slot=slot)


def _size(value: str | bytes) -> int:
    return len(value) if isinstance(value, bytes) or value.isascii() else len(value.encode())


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
