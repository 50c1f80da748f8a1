"""``toast.handling.mode=refetch``: unchanged TOAST values read again by primary key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import psycopg
import structlog
from psycopg import sql

from cdcd.decode.messages import UNCHANGED_TOAST, Relation, TupleData, Update, Value
from cdcd.errors import SourceUnavailable
from cdcd.source.visibility import WAITS_S, look_until_found
from cdcd.toast.metrics import ToastMetrics
from cdcd.toast.plans import Change, KeyPlan, KeyPlans, MissLog, ToastHandler

log = structlog.get_logger("cdcd.toast")

# The walsender prints values with these settings (cdcd.wire.replication.SESSION_OPTIONS).
_SESSION: Final = ("SELECT set_config('bytea_output', 'hex', false), set_config('extra_float_digits', '3', false), "
                   "set_config('IntervalStyle', 'postgres', false), set_config('DateStyle', 'ISO', false), "
                   "set_config('TimeZone', 'UTC', false)")



# Whether a transaction (pgoutput's 32-bit xid, widened with the current epoch) is visible to a new snapshot.
_VISIBLE: Final = """
WITH s AS (SELECT txid_current_snapshot() AS snap)
SELECT txid_visible_in_snapshot(
    ((txid_snapshot_xmax(snap) >> 32) - CASE WHEN %(xid)s > (txid_snapshot_xmax(snap) & 4294967295) THEN 1 ELSE 0 END)
    * 4294967296 + %(xid)s, snap)
FROM s
"""


class Refetcher(ToastHandler):
    """``toast.handling.mode=refetch``: ``SELECT`` the ``u`` columns by key, as pgoutput prints them.

    The value read is the row's current one, which may be newer than the
    change being emitted when the row changed again since; never older: the
    walsender may send a transaction a moment before other sessions see it
    committed, so the first re-read of a transaction waits, briefly, until
    they do (else it would read the row as it was before the transaction).
    """

    def __init__(self, conn: psycopg.Connection[Any], metrics: ToastMetrics, *,
                 waits_s: tuple[float, ...] = WAITS_S, sleep: Callable[[float], None] = time.sleep) -> None:
        self.conn = conn
        self.metrics = metrics
        self._waits_s = waits_s
        self._sleep = sleep
        self._xid: int | None = None
        """The transaction being streamed until it was seen visible (then None)."""
        self._plans = KeyPlans(conn)
        self._miss = MissLog("toast_refetch_missing")
        self._queries: dict[tuple[int, tuple[int, ...]], tuple[Relation, sql.Composed]] = {}
        self._session_set = False

    def began(self, xid: int) -> None:
        self._xid = xid

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

    def _fetch(self, plan: KeyPlan, missing: tuple[int, ...], new: TupleData) -> list[str | None] | None:
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
            if self._xid is not None:
                self._await_visible(self._xid)
                self._xid = None
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

    def _await_visible(self, xid: int) -> None:
        """Wait until sessions see transaction ``xid`` committed (``cdcd.source.visibility``); log if they never do."""
        def visible() -> bool | None:
            row = self.conn.execute(_VISIBLE, {"xid": xid}).fetchone()
            return True if row is not None and row[0] else None

        if look_until_found(visible, self._waits_s, self._sleep) is None:
            log.warning("toast_refetch_transaction_not_visible", xid=xid,
                        detail="re-read anyway: the values may predate the change")
