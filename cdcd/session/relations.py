"""What the session built per relation, and the one way to forget it.

pgoutput sends a Relation message before the first row of a table in each walsender
session and again after its schema changed; a ``cdcd.ddl`` message says the same from the
DDL side. Either invalidates everything built from the old description: the envelope
encoder, the outbox table, the event counters, and the incremental snapshot's key plan.
A DDL may also have rewritten stored values without change events (``ALTER COLUMN ...
TYPE ... USING``), so then the TOAST cache forgets the table's values too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from cdcd.debezium.envelope import TableEncoder
from cdcd.debezium.envelope_options import EnvelopeOptions
from cdcd.decode.messages import Relation
from cdcd.ops.metrics import Metrics
from cdcd.session.lanes import Lanes
from cdcd.snapshot.incremental import IncrementalSnapshot
from cdcd.source.tables import TableInfo
from cdcd.toast.plans import ToastHandler

log = structlog.get_logger("cdcd.pipeline")

OPS = {"create": "c", "update": "u", "delete": "d", "truncate": "t"}
"""Encoder method → Debezium ``op``."""


class RelationState:
    """Encoders, outbox tables and event counters by relation OID, built on first use."""

    def __init__(self, table_info: Callable[[Relation], TableInfo], options: EnvelopeOptions,
                 captures: Callable[[str], bool], outbox_handles: Callable[[str], bool], metrics: Metrics,
                 toast: ToastHandler | None, incremental: IncrementalSnapshot | None) -> None:
        self._table_info = table_info
        self._options = options
        self._captures = captures
        self._outbox_handles = outbox_handles
        self._metrics = metrics
        self._toast = toast
        self._incremental = incremental
        self.encoders: dict[int, TableEncoder | None] = {}
        """None: a relation that is not captured (or is an outbox table)."""
        self.outbox_tables: dict[int, TableInfo] = {}
        self._counters: dict[tuple[int, str], Any] = {}
        self._uncounted: dict[Any, int] = {}
        """Events not yet added to their counter: ``flush_counts`` adds them in one step per counter."""
        self.signal_oid: int | None = None
        """The signal table's OID, once its Relation message arrived."""
        self.lanes: Lanes | None = None
        """The session's compiled lanes: each new encoder is offered one (``cdcd.session.lanes``)."""

    def described(self, relation: Relation) -> None:
        """A Relation message: the rows that follow are shaped like this."""
        self.invalidate(relation.oid)
        incremental = self._incremental
        if incremental is not None and f"{relation.namespace}.{relation.name}" == incremental.signal_table:
            self.signal_oid = relation.oid

    def invalidate(self, oid: int, *, values_rewritten: bool = False) -> None:
        """Forget everything built for a relation; ``values_rewritten`` after a DDL that may rewrite rows."""
        if self.lanes is not None:
            self.lanes.drop(oid, self.counted)
        self.encoders.pop(oid, None)
        self.outbox_tables.pop(oid, None)
        for op in OPS:
            self._counters.pop((oid, op), None)
        if self._incremental is not None:
            self._incremental.relation_changed(oid)
        if values_rewritten and self._toast is not None:
            self._toast.schema_changed(oid)

    def encoder(self, relation: Relation) -> TableEncoder | None:
        """The relation's encoder, built on first use; None when it is not captured or is an outbox table."""
        try:
            return self.encoders[relation.oid]
        except KeyError:
            pass
        name = f"{relation.namespace}.{relation.name}"
        encoder = None
        if self._outbox_handles(name):
            self.outbox_tables[relation.oid] = self._table_info(relation)
            log.info("outbox_table_captured", table=name, oid=relation.oid)
        elif self._captures(name):
            table = self._table_info(relation)
            encoder = TableEncoder(table, self._options)
            if encoder.fallback_columns:
                log.warning("unknown_column_type", table=name, columns=list(encoder.fallback_columns),
                            hint="Debezium has no converter for these types: the columns are left out, or carried "
                                 "as bytes of their text with include.unknown.datatypes=true; see docs/types.md")
            log.info("table_captured", table=name, topic=encoder.topic, oid=relation.oid)
            if self.lanes is not None:
                self.lanes.add(relation, encoder, self.signal_oid)
        self.encoders[relation.oid] = encoder
        return encoder

    def counted(self, relation: Relation, op: str, n: int = 1) -> None:
        """``n`` more ``op`` events of the relation, for the per-table metric (published by ``flush_counts``)."""
        counter = self._counters.get((relation.oid, op))
        if counter is None:
            counter = self._counters[(relation.oid, op)] = self._metrics.events_counter(
                f"{relation.namespace}.{relation.name}", OPS[op])
        uncounted = self._uncounted
        uncounted[counter] = uncounted.get(counter, 0) + n

    def flush_counts(self) -> None:
        """Add the events counted since the last call to their counters.

        A Prometheus ``inc`` takes a lock and costs more than the rest of the bookkeeping
        of an event, so the session publishes once per status update.
        """
        if self._uncounted:
            for counter, n in self._uncounted.items():
                counter.inc(n)
            self._uncounted.clear()
