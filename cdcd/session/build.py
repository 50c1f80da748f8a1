"""Assemble a streaming session: what it needs, built in one place from the configuration.

``SessionStart`` is where the session starts (from the slot and the offsets record);
``SessionParts`` is every collaborator, built by ``build_parts`` and handed to
``StreamingSession`` as one value, so the session itself only drives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdcd.config import Config
from cdcd.debezium.envelope_options import EnvelopeOptions
from cdcd.debezium.message_events import MessageEncoder
from cdcd.debezium.options import envelope_options
from cdcd.debezium.schema_change import schema_change_encoder
from cdcd.debezium.transforms import outbox_router, unwrapper
from cdcd.debezium.transforms.outbox import OutboxRouter
from cdcd.debezium.transforms.unwrap import Unwrapper
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.delivery.offsets import OffsetStore, TxnPosition
from cdcd.delivery.sinks import Sink
from cdcd.delivery.tracker import LsnTracker
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.session.heartbeat import Heartbeat
from cdcd.session.lanes import Lanes
from cdcd.session.logical import LogicalMessages
from cdcd.session.relations import RelationState
from cdcd.session.signals import SignalRows
from cdcd.snapshot.incremental import IncrementalSnapshot, incremental_snapshot
from cdcd.source.catalog import Catalog
from cdcd.source.filters import TableFilter
from cdcd.toast.factory import toast_handler
from cdcd.toast.plans import ToastHandler
from cdcd.wire.replication import ReplicationConnection


@dataclass(frozen=True, slots=True)
class SessionStart:
    """Where a session starts: what Kafka holds (the offsets record) on which database."""

    database: str
    system_id: str | None = None
    last_commit_lsn: int | None = None
    """``source.sequence``'s first element until the first COMMIT: the stored end LSN, None on a
    first start and right after a snapshot (Debezium's stored ``lsn_commit``)."""
    skip_until: int = 0
    """Transactions whose commit record starts below this are in Kafka already (dropped)."""
    resume: TxnPosition | None = None
    """The PostgreSQL transaction Kafka holds parts of."""
    incremental: dict[str, Any] | None = None
    """A running incremental snapshot's progress."""


@dataclass(frozen=True, slots=True)
class Surfaces:
    """What the operations surface reads, shared by every session of the process."""

    stats: Any
    metrics: Metrics
    health: Health


@dataclass(slots=True)
class SessionParts:
    config: Config
    start: SessionStart
    repl: ReplicationConnection
    sink: Sink
    tracker: LsnTracker
    surfaces: Surfaces
    offsets: OffsetStore | None
    """None for a sink without transactions (stdout): no offsets records, no parts."""
    options: EnvelopeOptions
    decoder: PgOutputDecoder
    relations: RelationState
    logical: LogicalMessages
    signals: SignalRows | None
    """None without a signal table."""
    heartbeat: Heartbeat
    outbox: OutboxRouter | None
    unwrap: Unwrapper | None
    toast: ToastHandler | None
    incremental: IncrementalSnapshot | None
    part_after_s: float | None
    """Commit a PostgreSQL transaction to Kafka in parts once the Kafka transaction is this old."""
    lanes: Lanes | None = None
    """Row changes in one compiled call where the options allow it (``cdcd.session.lanes``)."""


def build_parts(config: Config, start: SessionStart, repl: ReplicationConnection, catalog: Catalog, sink: Sink,
                tracker: LsnTracker, surfaces: Surfaces, offsets: OffsetStore | None,
                options: EnvelopeOptions | None = None) -> SessionParts:
    options = options or envelope_options(config, start.database)
    metrics = surfaces.metrics
    table_filter = TableFilter(config.table_include_list, config.table_exclude_list)
    outbox = outbox_router(config.transforms, options)

    def outbox_handles(name: str) -> bool:
        return outbox is not None and outbox.handles_table_name(name)

    def snapshot_accepts(name: str) -> bool:
        """Tables an execute-snapshot signal may name: captured, and not routed by the outbox."""
        return table_filter(name) and not outbox_handles(name)

    # Beyond Debezium (docs/toast-and-ddl.md): real values for unchanged TOAST columns, DDL events.
    toast = toast_handler(config, catalog.conn, metrics.registry, system_id=start.system_id,
                          database=options.database, start_lsn=start.last_commit_lsn or 0)
    schema_changes = schema_change_encoder(config, options.database, options.connector_version, table_filter,
                                           catalog.conn)
    # Debezium's signal table: execute-snapshot and friends, and the incremental snapshot's watermarks.
    incremental = incremental_snapshot(config, options, metrics, snapshot_accepts, start.incremental)
    # A PostgreSQL transaction longer than a third of the producer's transaction.timeout.ms is
    # committed to Kafka in parts, well before the broker would abort the Kafka transaction.
    timeout_s = getattr(sink, "transaction_timeout_s", None) if offsets is not None else None
    conn = catalog.conn
    relations = RelationState(catalog.table_info, options, table_filter, outbox_handles, metrics, toast, incremental)
    messages = MessageEncoder(config.topic_prefix, options.database, options.connector_version,
                              config.binary_handling_mode)
    unwrap = unwrapper(config.transforms)
    lanes = Lanes.for_session(config, toast=toast, unwrap=unwrap, incremental=incremental)
    relations.lanes = lanes
    return SessionParts(
        config=config, start=start, repl=repl, sink=sink, tracker=tracker, surfaces=surfaces, offsets=offsets,
        options=options, decoder=PgOutputDecoder(), relations=relations,
        logical=LogicalMessages(messages, outbox, schema_changes, relations, metrics, surfaces.stats),
        signals=SignalRows(incremental, unwrap, surfaces.stats) if incremental is not None else None,
        heartbeat=Heartbeat(config, conn.execute if conn is not None else None),
        outbox=outbox, unwrap=unwrap, toast=toast, incremental=incremental,
        part_after_s=timeout_s / 3 if timeout_s else None, lanes=lanes)
