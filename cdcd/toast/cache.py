"""``toast.handling.mode=cache``: fill unchanged TOAST values from the last value seen.

Every insert and update remembers its large values (at least
``toast.cache.min.bytes``) in the ``ToastStore``; an update's ``u`` columns are
filled from it before the envelope is built. The cache stays correct across
crashes and restarts by two rules:

1. every entry records the LSN of the change that wrote it, and a change at
   a lower LSN (a transaction replayed after a crash) never reads it;
2. the file records the position up to which it has seen every change
   (``on_position``: the LSN confirmed to PostgreSQL); a session that starts
   beyond it (a new slot, a snapshot, changes streamed elsewhere) empties it.

The store's writes are committed at each PostgreSQL COMMIT that wrote something.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import psycopg

from cdcd.decode.messages import UNCHANGED_TOAST, Delete, Insert, Relation, TupleData, Update, Value
from cdcd.toast.metrics import ToastMetrics
from cdcd.toast.plans import Change, KeyPlan, KeyPlans, MissLog, ToastHandler
from cdcd.toast.store import ToastStore


class CacheFiller(ToastHandler):
    """``toast.handling.mode=cache``: remember large values, fill ``u`` columns from them."""

    def __init__(self, store: ToastStore, conn: psycopg.Connection[Any], min_bytes: int,
                 metrics: ToastMetrics) -> None:
        self.store = store
        self.min_bytes = min_bytes
        self.metrics = metrics
        self._plans = KeyPlans(conn, self._check_key)
        self._miss = MissLog("toast_cache_miss")
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
            self.sync_metrics()

    def on_position(self, lsn: int) -> None:
        position = self.store.position
        if self.store.dirty or position is None or lsn > position:
            self.store.commit(lsn)
            self.sync_metrics()

    def _check_key(self, plan: KeyPlan) -> None:
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

    def sync_metrics(self) -> None:
        evicted, self._evictions = self.store.evictions - self._evictions, self.store.evictions
        if evicted:
            self.metrics.evictions.inc(evicted)
        self.metrics.cache_bytes.set(self.store.held_bytes)
