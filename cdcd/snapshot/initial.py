"""When the daemon takes the initial snapshot, and taking it: mark → (new slot) → read → streaming connection.

``snapshot_needed`` decides from ``snapshot.mode``, the slot and what Kafka holds.
``InitialSnapshot.take`` first commits an offsets record saying a snapshot started (a
restart then takes it again instead of leaving a gap), creates the slot with an exported
snapshot when the stream must start exactly where the snapshot ends, reads every captured
table, and hands back a fresh replication connection to stream on, or says why to stop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import structlog

from cdcd.config import Config
from cdcd.debezium.envelope_options import EnvelopeOptions
from cdcd.debezium.options import envelope_options
from cdcd.debezium.transforms import outbox_router, unwrapper
from cdcd.delivery.offsets import OffsetStore, SourceOffset
from cdcd.delivery.sinks import Sink
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.ops.sdnotify import Notifier
from cdcd.snapshot import SnapshotReader, create_slot_with_snapshot, tables_to_snapshot
from cdcd.snapshot.run import produce_snapshot
from cdcd.source.catalog import Catalog
from cdcd.source.filters import TableFilter
from cdcd.source.slot import SlotKeeper
from cdcd.wire.lsn import format_lsn
from cdcd.wire.replication import ReplicationConnection, SlotInfo, SystemIdentity

log = structlog.get_logger("cdcd.daemon")


def snapshot_needed(config: Config, info: SlotInfo | None, stored: SourceOffset | None, slot_seen: bool) -> bool:
    """Whether this session starts with a snapshot (``info``: the slot, None when there is none)."""
    mode = config.snapshot_mode
    if mode in ("no_data", "never"):
        return False
    if stored is not None and not stored.snapshot_completed:
        return True  # an earlier snapshot did not finish: take it again
    if info is None:
        if mode == "when_needed":
            return True  # the stored position is not available any more: snapshot again
        # A slot this process used, or one Kafka holds a position of, is gone: SlotKeeper.open
        # reports that; it is never silently re-created by a snapshot.
        return stored is None and not slot_seen
    if mode == "always":
        return True
    return mode == "when_needed" and stored is None and config.sink == "kafka"


@dataclass(frozen=True, slots=True)
class Snapshotted:
    """The snapshot is in Kafka: stream on ``repl`` from the position ``stored`` names."""

    repl: ReplicationConnection
    stored: SourceOffset


@dataclass(frozen=True, slots=True)
class SnapshotStopped:
    """No streaming follows: a stop was requested, or ``snapshot.mode=initial_only`` finished."""

    completed: bool


@dataclass(frozen=True, slots=True)
class _NewSlot:
    point: int
    """The consistent point: the stream starts exactly where the snapshot ends."""
    name: str
    """The exported snapshot every reader imports."""


class InitialSnapshot:
    def __init__(self, config: Config, slots: SlotKeeper, *, stop: threading.Event, metrics: Metrics,
                 health: Health, notifier: Notifier) -> None:
        self.config, self.slots, self.stop = config, slots, stop
        self.metrics, self.health, self.notifier = metrics, health, notifier

    def take(self, repl: ReplicationConnection, sink: Sink, catalog: Catalog, identity: SystemIdentity,
             info: SlotInfo | None, stored: SourceOffset | None,
             offsets: OffsetStore | None) -> Snapshotted | SnapshotStopped:
        config = self.config
        unfinished = stored is not None and not stored.snapshot_completed
        exported = config.snapshot_mode != "initial_only" and (
            info is None or (unfinished and config.snapshot_mode == "initial"))
        if offsets is not None:
            self._mark_started(sink, offsets, stored, identity.system_id)
        new_slot = self._new_slot(repl, replacing=info is not None) if exported else None
        options = envelope_options(config, identity.dbname)
        tables = self._tables(catalog, options)
        offset_lsn = new_slot.point if new_slot is not None else (
            stored.lsn if stored is not None else (info.confirmed_flush_lsn or 0) if info else 0)
        log.info("snapshot_started", mode=config.snapshot_mode, tables=tables, exported=exported)
        self.notifier.status(f"snapshot of {len(tables)} table(s)")
        with SnapshotReader(config.dsn, new_slot.name if new_slot else None, new_slot.point if new_slot else None,
                            tables, degree=config.snapshot_max_threads, fetch_size=config.snapshot_fetch_size,
                            publication=config.publication_name, on_progress=self._progress) as reader:
            repl.close()  # every reader holds the snapshot now; the walsender must not idle meanwhile
            completed = produce_snapshot(
                reader, sink, options, offsets=offsets, offset_lsn=offset_lsn, system_id=identity.system_id,
                batch_events=config.max_batch_events, stop=self.stop, metrics=self.metrics, health=self.health,
                unwrap=unwrapper(config.transforms))
        if not completed or config.snapshot_mode == "initial_only":
            if config.snapshot_mode == "initial_only" and completed:
                log.info("initial_only_done", hint="the snapshot is complete; cdcd stops (snapshot.mode=initial_only)")
                self.stop.set()
            return SnapshotStopped(completed)
        streaming = ReplicationConnection(config.dsn)
        streaming.identify_system()
        return Snapshotted(streaming, SourceOffset(offset_lsn, reader.txid, reader.ts_us, identity.system_id,
                                                   snapshot_completed=True))

    def _mark_started(self, sink: Sink, offsets: OffsetStore, stored: SourceOffset | None,
                      system_id: str) -> None:
        """Before the slot exists: whatever happens next, a restart sees an unfinished snapshot and takes it again."""
        sink.send(offsets.record(SourceOffset(stored.lsn if stored else 0, None, None, system_id,
                                              snapshot_completed=False)))
        sink.commit()

    def _new_slot(self, repl: ReplicationConnection, *, replacing: bool) -> _NewSlot:
        slot = self.config.slot_name
        if replacing:
            # Nothing was streamed from this slot (its snapshot never completed), so a new
            # slot with a new snapshot loses nothing and makes the result exact again.
            log.info("snapshot_restarting", slot=slot, reason="the previous snapshot did not complete")
            repl.drop_slot(slot)
        wait = self.slots.creation_wait()
        try:
            point, name = create_slot_with_snapshot(repl, slot, on_wait=wait)
        finally:
            wait.close()
        self.slots.seen = True
        log.info("slot_created", slot=slot, consistent_point=format_lsn(point), snapshot=name)
        return _NewSlot(point, name)

    def _tables(self, catalog: Catalog, options: EnvelopeOptions) -> list[str]:
        """The captured tables of cdcd's publications, in snapshot order, outbox tables left out."""
        config = self.config
        accept = TableFilter(config.table_include_list, config.table_exclude_list)
        outbox = outbox_router(config.transforms, options)
        tables = accept.snapshot_order(
            {t for name in self.slots.publications for t in tables_to_snapshot(catalog.conn, name, accept)})
        if outbox is not None:
            tables = [t for t in tables if not outbox.handles_table_name(t)]
        return tables

    def _progress(self, table: str, done: int, estimated: int | None) -> None:
        if estimated is not None:
            self.metrics.set_snapshot_estimate(table, estimated)
        self.health.loop_tick()
        log.info("snapshot_progress", table=table, rows_done=done, rows_estimated=estimated)
