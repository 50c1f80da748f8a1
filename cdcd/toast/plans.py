"""Which columns identify a row of a relation, and what the TOAST strategies share.

``ToastHandler`` is what the pipeline calls; ``KeyPlans`` finds each relation's
key columns (the replica identity, or the primary key under FULL/NOTHING);
``MissLog`` logs the first miss per table and column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import psycopg
import structlog

from cdcd.decode.messages import UNCHANGED_TOAST, Delete, Insert, Relation, TupleData, Update
from cdcd.errors import SourceUnavailable

log = structlog.get_logger("cdcd.toast")

# Primary key columns in key order, for tables whose Relation message flags every column (FULL).
_PRIMARY_KEY: Final = """
SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord
"""

@dataclass(frozen=True, slots=True)
class KeyPlan:
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


class KeyPlans:
    """Key columns per relation: the replica identity, or the primary key under FULL/NOTHING."""

    def __init__(self, conn: psycopg.Connection[Any], on_new: Callable[[KeyPlan], None] | None = None) -> None:
        self._conn = conn
        self._on_new = on_new
        self._plans: dict[int, KeyPlan] = {}

    def __call__(self, relation: Relation) -> KeyPlan:
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
        plan = self._plans[relation.oid] = KeyPlan(relation, tuple(key) or None)
        if self._on_new is not None:
            self._on_new(plan)
        return plan


Change = Insert | Update | Delete


class MissLog:
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

    def began(self, xid: int) -> None:
        """A PostgreSQL transaction (``xid``, 32 bits as pgoutput sends it) begins; its changes follow."""

    def schema_changed(self, oid: int) -> None:
        """DDL changed the table (a ``cdcd.ddl`` message)."""

    def commit(self, end_lsn: int) -> None:
        """A PostgreSQL transaction ended at ``end_lsn``."""

    def on_position(self, lsn: int) -> None:
        """Everything up to ``lsn`` was seen; it is about to be confirmed to PostgreSQL."""
