"""Row changes in one compiled call: when a session may take them that way, and what it keeps in step.

On the compiled core, an Insert, Update or Delete frame of a captured table
becomes its records in one call (``cdcd.native._core.ChangeLanes``): no message
objects, no dispatch, no per-event Python between the socket and the sink. The
session offers every frame to ``change`` first; None sends it the general way,
which stays the reference and handles everything else.

A lane is open only where the general path would do exactly what it does:
  * per session: the compiled core runs, no ExtractNewRecordState transform,
    ``toast.handling.mode=placeholder``, no transaction metadata;
  * per transaction: Kafka holds none of it yet (not skipped, not resumed in
    parts) and it has no replication origin;
  * per table: every part of its encoder is compiled; not the signal table; not
    the table an incremental snapshot's window is open on.
The per-table event counters a lane keeps are published with the others.
"""

from __future__ import annotations

from typing import Any

from cdcd.config import Config
from cdcd.debezium.envelope import Record, TableEncoder
from cdcd.decode.messages import Relation
from cdcd.native import change_lanes
from cdcd.session.transaction import OpenTransaction
from cdcd.snapshot.incremental import IncrementalSnapshot

_OPS = ("create", "update", "delete")


class Lanes:
    """The session's compiled lanes: which tables have one, and whether the open transaction may use them."""

    def __init__(self, core: Any, incremental: IncrementalSnapshot | None) -> None:
        self.core = core
        """``ChangeLanes``: the session calls ``core.change(data)`` per frame."""
        self._incremental = incremental
        self._relations: dict[int, Relation] = {}

    @classmethod
    def for_session(cls, config: Config, *, toast: object | None, unwrap: object | None,
                    incremental: IncrementalSnapshot | None) -> Lanes | None:
        """The lanes, or None where the session's options leave every change to the general path."""
        if toast is not None or unwrap is not None or config.provide_transaction_metadata:
            return None
        core = change_lanes(Record)
        return None if core is None else cls(core, incremental)

    def add(self, relation: Relation, encoder: TableEncoder, signal_oid: int | None) -> None:
        """A table's encoder was built: give it a lane if every part of it is compiled."""
        if relation.oid == signal_oid:
            return
        lane = encoder.compiled_lane(len(relation.columns))
        if lane is not None:
            self.core.add(relation.oid, lane)
            self._relations[relation.oid] = relation

    def drop(self, oid: int, counted: Any) -> None:
        """The relation changed: its lane goes (its counts are published first)."""
        if oid in self._relations:
            self.publish(counted)
            self.core.drop(oid)
            del self._relations[oid]

    def sync(self, txn: OpenTransaction | None, last_commit_lsn: int | None) -> None:
        """After a message went the general way: open the lanes for ``txn`` if it may use them, else close them."""
        incremental = self._incremental
        if incremental is not None:
            oid = incremental.table_oid
            self.core.blocked = oid if incremental.window_open and oid is not None else -1
        if txn is None or txn.skip or txn.held or txn.origin is not None or txn.origin_lsn is not None:
            self.core.close()
        elif not self.core.open:
            self.core.begin(txn.commit_ts_us, txn.xid, last_commit_lsn)

    def taken(self) -> int:
        """Row changes the lanes took since the last call (the session's event count)."""
        rows, self.core.rows = self.core.rows, 0
        return rows  # type: ignore[no-any-return]

    def publish(self, counted: Any) -> None:
        """Hand the lanes' per-table event counts to ``counted(relation, op, n)``."""
        for oid, *counts in self.core.take_counts():
            relation = self._relations[oid]
            for op, n in zip(_OPS, counts):
                if n:
                    counted(relation, op, n)
