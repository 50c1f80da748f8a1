"""The pipeline: WAL frames → decoded messages → envelopes → sink → confirmed LSN.

One streaming session reads frames in order and hands records to the sink.
Kafka transactions are committed only at PostgreSQL transaction boundaries:
as soon as the socket has nothing more to read (low latency when idle) or
when a batch grows past ``max.batch.events`` / ``max.batch.ms`` (throughput
under load). Only after the sink committed does the tracker move the LSN
that the next standby status update confirms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from cdcd.source.catalog import Catalog
from cdcd.config import Config
from cdcd.debezium.schema_change import PREFIX as DDL_PREFIX, parse as parse_ddl, schema_change_encoder
from cdcd.errors import CdcdError
from cdcd.debezium.heartbeat import heartbeat_record
from cdcd.debezium.message_events import MessageEncoder, message_data_collection
from cdcd.debezium.envelope import (
    EnvelopeOptions,
    SourceInfo,
    TableEncoder,
    TransactionContext,
    transaction_begin_record,
    transaction_end_record,
)
from cdcd.source.filters import TableFilter
from cdcd.ops.health import Health
from cdcd.wire.lsn import format_lsn
from cdcd.ops.metrics import Metrics
from cdcd.decode.messages import Begin, Commit, Delete, Insert, LogicalMessage, Origin, Relation, Truncate, Update
from cdcd.delivery.offsets import OffsetRecord, OffsetStore, SourceOffset, TxnPosition
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.wire.frames import Keepalive
from cdcd.wire.replication import ReplicationConnection
from cdcd.source.signal_table import signal_from_row
from cdcd.delivery.sinks import Sink
from cdcd.snapshot.incremental import ChunkRows, incremental_snapshot
from cdcd.source.tables import TableInfo
from cdcd.toast.factory import toast_handler
from cdcd.delivery.tracker import LsnTracker
from cdcd.debezium.transforms import outbox_router, unwrapper

log = structlog.get_logger("cdcd.pipeline")

_OPS = {"create": "c", "update": "u", "delete": "d", "truncate": "t"}
_COUNTED = (Insert, Update, Delete, Truncate)
"""What ``TxnPosition.changes`` counts (with transactional logical messages): decoding the
same WAL again yields them in the same order, unlike Relation messages, which pgoutput
sends once per walsender session."""


@dataclass(slots=True)
class _Txn:
    xid: int
    commit_ts_us: int
    begin_lsn: int
    metadata: TransactionContext | None = None
    begun: bool = False
    origin: str | None = None
    origin_lsn: int | None = None
    skip: bool = False
    """Kafka already holds this transaction (it ended at or before the stored offset)."""
    final_lsn: int = 0
    changes: int = 0
    """Row changes, truncates and transactional messages seen so far (``TxnPosition.changes``)."""
    held: int = 0
    """The first ``held`` changes are already in Kafka (committed in parts before a restart)."""

    def source(self, lsn: int, last_commit_lsn: int | None) -> SourceInfo:
        """An event of this transaction at ``lsn``: its ``ts_*`` are the commit time."""
        return SourceInfo(ts_us=self.commit_ts_us, txid=self.xid, lsn=lsn, last_commit_lsn=last_commit_lsn,
                          origin=self.origin, origin_lsn=self.origin_lsn)


@dataclass(slots=True)
class Stats:
    """Counters the operations surface reads; plain ints, updated on the hot path."""

    events: int = 0
    transactions: int = 0
    kafka_commits: int = 0
    last_commit_ts_us: int = 0
    streaming: bool = False


class StreamingSession:
    """One replication connection's worth of streaming; ends on stop or error."""

    def __init__(self, config: Config, repl: ReplicationConnection, catalog: Catalog, sink: Sink,
                 options: EnvelopeOptions, tracker: LsnTracker, stats: Stats,
                 last_commit_lsn: int | None, metrics: Metrics, health: Health,
                 offsets: OffsetStore | None = None, skip_until: int = 0,
                 system_id: str | None = None, incremental: dict[str, Any] | None = None,
                 resume: TxnPosition | None = None) -> None:
        self.config = config
        self.repl = repl
        self.catalog = catalog
        self.sink = sink
        self.options = options
        self.tracker = tracker
        self.stats = stats
        self.metrics = metrics
        self.health = health
        self._event_counters: dict[tuple[int, str], Any] = {}
        self.batch_bytes = 0
        self.decoder = PgOutputDecoder()
        self.table_filter = TableFilter(config.table_include_list, config.table_exclude_list)
        self.encoders: dict[int, TableEncoder | None] = {}
        self.outbox = outbox_router(config.transforms, options)
        self.outbox_tables: dict[int, TableInfo] = {}
        self.unwrap = unwrapper(config.transforms)
        self.last_commit_lsn = last_commit_lsn
        self.offsets = offsets
        self.skip_until = skip_until
        self.resume = resume
        """The PostgreSQL transaction Kafka holds parts of, from the stored offsets record."""
        self._dropping = False
        """True while handling a change Kafka already holds: its records are not sent again."""
        # A PostgreSQL transaction longer than this is committed to Kafka in parts, well
        # before the broker aborts the Kafka transaction (transaction.timeout.ms).
        timeout_s = getattr(sink, "transaction_timeout_s", None) if offsets is not None else None
        self._part_after_s: float | None = timeout_s / 3 if timeout_s else None
        self.system_id = system_id
        self.last_txid: int | None = None
        self.last_commit_ts_us: int | None = None
        self.txn: _Txn | None = None
        self.messages = MessageEncoder(config.topic_prefix, options.database, options.connector_version,
                                       config.binary_handling_mode)
        self._heartbeat_s = config.heartbeat_interval_ms / 1000.0
        self._next_heartbeat = time.monotonic() + self._heartbeat_s
        self.batch_events = 0
        self.batch_started = 0.0
        self._status_interval = config.status_interval_ms / 1000.0
        self._next_status = 0.0
        # Beyond Debezium (docs/toast-and-ddl.md): real values for unchanged TOAST columns, DDL events.
        self.toast = toast_handler(config, catalog.conn, metrics.registry, system_id=system_id,
                                   database=options.database, start_lsn=last_commit_lsn or 0)
        self.schema_changes = schema_change_encoder(config, options.database, options.connector_version,
                                                    self.table_filter, catalog.conn)
        # Debezium's signal table: execute-snapshot and friends, and the incremental snapshot's watermarks.
        self.incremental = incremental_snapshot(config, options, metrics, self._snapshot_accepts, incremental)
        self.signal_oid: int | None = None

    # -- main loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.stats.streaming = True
        self.health.set_streaming(True)
        try:
            if self.incremental is not None:
                self.incremental.start()
            self._loop(stop)
        finally:
            if self.incremental is not None:
                self.incremental.close()

    def _loop(self, stop: threading.Event) -> None:
        repl, tracker, sink = self.repl, self.tracker, self.sink
        max_batch_s = self.config.max_batch_ms / 1000.0
        max_events = self.config.max_batch_events
        while not stop.is_set():
            frame = repl.read(0)
            if frame is None:
                # Nothing more to read right now: commit what is complete (latency).
                if self._heartbeat_s and time.monotonic() >= self._next_heartbeat and not tracker.in_transaction:
                    self._heartbeat()
                if tracker.commit_due:
                    self._commit_batch()
                self._maybe_send_status()
                self.health.loop_tick()
                frame = repl.read(min(0.2, self._status_interval))
                if frame is None:
                    continue
            if type(frame) is Keepalive:
                tracker.keepalive(frame.wal_end)
                if frame.reply_requested:
                    self._send_status(reply=False)
                continue
            tracker.frame(frame.wal_end)  # type: ignore[union-attr]
            self._handle(self.decoder.decode(frame.payload), frame.wal_start)  # type: ignore[union-attr]
            if tracker.staged is not None and not tracker.in_transaction and (
                    self.batch_events >= max_events or time.monotonic() - self.batch_started >= max_batch_s):
                self._commit_batch()
            if time.monotonic() >= self._next_status:
                sink.poll()
                self._maybe_send_status()
                self.health.loop_tick()
        self._shutdown()

    def _shutdown(self) -> None:
        """Commit complete transactions, drop a partial one, confirm what Kafka holds."""
        if self.tracker.in_transaction:
            self.sink.abort()
            self.tracker.sink_aborted()
            self.metrics.kafka_aborted()
        elif self.tracker.staged is not None:
            try:
                self._commit_batch(timeout_s=self.config.shutdown_timeout_ms / 1000)
            except CdcdError as exc:
                # Not confirmed, so PostgreSQL sends it again on the next start: nothing is lost.
                log.warning("shutdown_commit_failed", error=str(exc))
                self.sink.abort()
                self.tracker.sink_aborted()
        self._send_status(reply=False)
        self.stats.streaming = False
        self.health.set_streaming(False)

    # -- messages ----------------------------------------------------------------------------

    def _handle(self, msg: object, wal_start: int) -> None:
        kind = type(msg)
        txn = self.txn
        if txn is not None and not txn.skip and (
                kind in _COUNTED or (kind is LogicalMessage and msg.transactional)):  # type: ignore[attr-defined]
            # A change of the open transaction: counted, so a transaction committed to Kafka in
            # parts can resume after a restart exactly after the last part Kafka holds.
            txn.changes += 1
            self._dropping = txn.changes <= txn.held
            try:
                self._handle_message(kind, msg, wal_start)
            finally:
                self._dropping = False
            if self._part_after_s is not None and self.sink.in_transaction \
                    and self.sink.transaction_age_s >= self._part_after_s:  # type: ignore[attr-defined]
                self._commit_part(txn)
            return
        self._handle_message(kind, msg, wal_start)

    def _handle_message(self, kind: type, msg: object, wal_start: int) -> None:
        if kind is Insert or kind is Update or kind is Delete:
            self._change(msg, wal_start)  # type: ignore[arg-type]
        elif kind is Begin:
            assert isinstance(msg, Begin)
            self.tracker.transaction_began()
            # final_lsn is the commit record's start, so it is below the stored end LSN
            # exactly for the transactions Kafka already holds.
            skip = msg.final_lsn < self.skip_until
            if skip:
                log.info("transaction_already_in_kafka", xid=msg.xid, lsn=format_lsn(msg.final_lsn))
            self.txn = _Txn(msg.xid, msg.commit_ts, wal_start, skip=skip, final_lsn=msg.final_lsn)
            resume = self.resume
            if resume is not None and not skip and msg.final_lsn == resume.final_lsn:
                self.txn.held = resume.changes
                log.info("transaction_resumed", xid=msg.xid, lsn=format_lsn(msg.final_lsn),
                         changes_in_kafka=resume.changes)
            if not skip:
                # As Debezium: BEGIN for every transaction pgoutput sends, even when all its changes
                # are filtered out or skipped (END then counts 0); Kafka has it already when resumed.
                self._metadata(self.txn, announce=not self.txn.held)
        elif kind is Commit:
            assert isinstance(msg, Commit)
            self._commit(msg)
        elif kind is Relation:
            assert isinstance(msg, Relation)
            self.encoders.pop(msg.oid, None)
            self.outbox_tables.pop(msg.oid, None)
            for op in _OPS:
                self._event_counters.pop((msg.oid, op), None)
            if self.incremental is not None:
                self.incremental.relation_changed(msg.oid)
                if f"{msg.namespace}.{msg.name}" == self.incremental.signal_table:
                    self.signal_oid = msg.oid
        elif kind is Truncate:
            assert isinstance(msg, Truncate)
            if self.txn is not None and self.txn.skip:
                return
            for relation in msg.relations:
                if self.toast is not None:
                    self.toast.truncate(relation)
                if self.incremental is not None:
                    self.incremental.truncated(relation.oid)
                encoder = self._encoder(relation)
                if encoder is not None:
                    self._emit(encoder, relation, wal_start, "truncate")
        elif kind is Origin:
            assert isinstance(msg, Origin)
            if self.txn is not None:
                self.txn.origin, self.txn.origin_lsn = msg.name, msg.commit_lsn
        elif kind is LogicalMessage:
            assert isinstance(msg, LogicalMessage)
            self._message(msg)

    def _change(self, msg: Insert | Update | Delete, wal_start: int) -> None:
        if self.txn is not None and self.txn.skip:
            return
        incremental = self.incremental
        if incremental is not None and not self._dropping:  # a held change's signal was carried out already
            oid = msg.relation.oid
            if oid == self.signal_oid:
                self._signal(msg, wal_start)
            elif incremental.window_open and oid == incremental.table_oid:
                incremental.deduplicate(msg)
        encoder = self._encoder(msg.relation)
        if encoder is None:
            table = self.outbox_tables.get(msg.relation.oid)
            if table is not None:
                self._outbox_change(table, msg, wal_start)
            return
        if self.toast is not None:
            msg = self.toast.change(msg, wal_start)
        if type(msg) is Insert:
            self._emit(encoder, msg.relation, wal_start, "create", msg.new)
        elif type(msg) is Update:
            self._emit(encoder, msg.relation, wal_start, "update", msg.old_kind, msg.old, msg.new)
        else:
            self._emit(encoder, msg.relation, wal_start, "delete", msg.old_kind, msg.old)  # type: ignore[union-attr]

    def _signal(self, msg: Insert | Update | Delete, wal_start: int) -> None:
        """A signal-table row: a signal, or a watermark that may close the incremental snapshot's window."""
        assert self.incremental is not None
        chunk = None
        if type(msg) is Insert:
            signal = signal_from_row(msg.new)
            if signal is not None:
                log.info("signal_received", id=signal.id, type=signal.type, lsn=format_lsn(wal_start))
                chunk = self.incremental.on_signal(signal)
        elif type(msg) is Delete and msg.old:
            chunk = self.incremental.on_signal_deleted(msg.old[0])
        if chunk is not None:
            self._snapshot_rows(chunk, wal_start)

    def _snapshot_rows(self, chunk: ChunkRows, lsn: int) -> None:
        """A closed window's rows: ``op: "r"``, ``source.snapshot`` = ``incremental``, read just now.

        As Debezium: right before the watermark row's own event (after its transaction's
        BEGIN), no ``transaction`` block, ``txId`` and ``lsn`` null, ``sequence`` at the watermark.
        """
        txn = self.txn
        assert txn is not None
        source = SourceInfo.read_now(lsn, self.last_commit_lsn, snapshot="incremental", lsn_null=True)
        create, unwrap = chunk.encoder.create, self.unwrap
        for values in chunk.rows:
            for record in create(values, source, None, "r"):
                sent = unwrap(record) if unwrap is not None else record
                if sent is not None:
                    self._send(sent)
        self.stats.events += len(chunk.rows)

    def _snapshot_accepts(self, name: str) -> bool:
        """Tables an execute-snapshot signal may name: captured, and not routed by the outbox."""
        return self.table_filter(name) and not (self.outbox is not None and self.outbox.handles_table_name(name))

    def _outbox_change(self, table: TableInfo, msg: Insert | Update | Delete, wal_start: int) -> None:
        """Outbox tables: inserts are routed events; updates are warned about, deletes ignored."""
        router = self.outbox
        assert router is not None and self.txn is not None
        if type(msg) is Insert:
            txn = self.txn
            for record in router.route_row(table, msg.new, txn.source(wal_start, self.last_commit_lsn)):
                self._send(record)
            self.stats.events += 1
        elif type(msg) is Update:
            router.on_update(table)
            getattr(log, router.update_log_level)("outbox_update_ignored", table=table.qualified_name,
                                                  detail=router.warning_for_update(table))
        else:
            router.on_delete(table)

    def _message(self, msg: LogicalMessage) -> None:
        """``op: "m"`` (or an outbox event); a non-transactional message is its own unit of delivery."""
        txn = self.txn
        if self.schema_changes is not None and msg.prefix == DDL_PREFIX and msg.transactional and txn is not None:
            self._schema_change(msg, txn)
            return
        if msg.transactional and txn is not None:
            if txn.skip:
                return
            source = txn.source(msg.lsn, self.last_commit_lsn)
            # Debezium counts each message as a data collection of its own (a new LogicalDecodingMessageId).
            metadata = self._metadata(txn)
            block = None if metadata is None else metadata.next_block(message_data_collection(msg.lsn), msg.lsn)
            self._send_message(msg, source, block)
            return
        if msg.lsn < self.skip_until:
            return
        self._send_message(msg, SourceInfo.read_now(msg.lsn, self.last_commit_lsn), None)
        # Position just past the message: confirming its own LSN would make PostgreSQL send it again.
        self.tracker.message_ended(msg.lsn + 1)

    def _schema_change(self, msg: LogicalMessage, txn: _Txn) -> None:
        """A ``cdcd.ddl`` message: forget what was built for its tables, emit one schema change event."""
        try:
            change = parse_ddl(msg.content)
        except ValueError as exc:
            log.warning("ddl_message_invalid", lsn=format_lsn(msg.lsn), error=str(exc))
            self.metrics.error("ddl_message")
            return
        for table in change.tables:  # pgoutput sends a Relation before the next row anyway
            self.encoders.pop(table.oid, None)
            self.outbox_tables.pop(table.oid, None)
            for op in _OPS:
                self._event_counters.pop((table.oid, op), None)
            if self.toast is not None:
                self.toast.schema_changed(table.oid)
        assert self.schema_changes is not None
        record = None if txn.skip else self.schema_changes.record(change, txn.source(msg.lsn, self.last_commit_lsn))
        if record is not None:
            self._send(record)
            self.stats.events += 1

    def _send_message(self, msg: LogicalMessage, source: SourceInfo, block: dict[str, Any] | None) -> None:
        if self.outbox is not None and self.outbox.handles_message(msg):
            for record in self.outbox.route_message(msg, source):
                self._send(record)
        else:
            self._send(self.messages.record(msg.prefix, msg.content, source, block))

    def _heartbeat(self) -> None:
        self._next_heartbeat = time.monotonic() + self._heartbeat_s
        self._send(heartbeat_record(self.config.topic_heartbeat_prefix, self.config.topic_prefix))
        query = self.config.heartbeat_action_query
        if query:
            try:
                self.catalog.conn.execute(query)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - a failing heartbeat query must not stop streaming
                log.warning("heartbeat_action_query_failed", error=str(exc))

    def _emit(self, encoder: TableEncoder, relation: Relation, lsn: int, op: str, *args: object) -> None:
        txn = self.txn
        if txn is None:
            raise AssertionError("row change outside a transaction")
        metadata = self._metadata(txn)
        records = getattr(encoder, op)(*args, txn.source(lsn, self.last_commit_lsn), metadata)
        unwrap = self.unwrap
        for record in records:
            if unwrap is not None:
                record = unwrap(record)
                if record is None:
                    continue
            self._send(record)
        self.stats.events += 1
        counter = self._event_counters.get((relation.oid, op))
        if counter is None:
            counter = self._event_counters[(relation.oid, op)] = self.metrics.events_counter(
                f"{relation.namespace}.{relation.name}", _OPS[op])
        counter.inc()

    def _metadata(self, txn: _Txn, *, announce: bool = True) -> TransactionContext | None:
        """The transaction's metadata, its BEGIN record sent when it is made; None when not provided."""
        if not self.config.provide_transaction_metadata:
            return None
        if txn.metadata is None:
            txn.metadata = TransactionContext(txn.xid, txn.begin_lsn, txn.commit_ts_us // 1000)
            if announce:
                self._send(transaction_begin_record(self.config.topic_prefix, txn.metadata))
        return txn.metadata

    def _send(self, record: object) -> None:
        if self._dropping:
            return  # Kafka holds this change already (an earlier part of this transaction)
        if self.batch_events == 0:
            self.batch_started = time.monotonic()
            self.tracker.sink_pending()
        self.sink.send(record)  # type: ignore[arg-type]
        self.batch_events += 1
        self.batch_bytes += len(record.value or b"") + len(record.key or b"")  # type: ignore[attr-defined]

    def _commit(self, msg: Commit) -> None:
        txn = self.txn
        if txn is not None and txn.metadata is not None:
            self._send(transaction_end_record(self.config.topic_prefix, txn.metadata, msg.end_lsn))
        self.last_commit_lsn = msg.end_lsn
        if self.toast is not None:
            self.toast.commit(msg.end_lsn)
        if txn is not None and not txn.skip:
            self.last_txid, self.last_commit_ts_us = txn.xid, msg.commit_ts
        if self._progress_unsaved():
            self.tracker.sink_pending()
        self.tracker.transaction_ended(msg.end_lsn)
        self.stats.transactions += 1
        self.stats.last_commit_ts_us = msg.commit_ts
        self.metrics.transaction_processed(msg.commit_ts)
        self.txn = None

    def _progress_unsaved(self) -> bool:
        """The incremental snapshot moved on since the last offsets record: Kafka must hear of it."""
        return self.offsets is not None and self.incremental is not None and self.incremental.dirty

    def _commit_batch(self, timeout_s: float | None = None) -> None:
        started = time.monotonic()
        tracker = self.tracker
        if self._progress_unsaved():
            tracker.sink_pending()
        pending = tracker.pending
        position = tracker.commit_started()
        if self.offsets is not None and pending and position is not None:
            self.sink.send(self._offsets_record(position))
        done = self._commit_sink(started, timeout_s)
        log.debug("batch_committed", events=self.batch_events, lsn=format_lsn(self.tracker.committed),
                  duration_ms=round((done - started) * 1000, 3))
        self.batch_events = 0
        self.batch_bytes = 0

    def _commit_part(self, txn: _Txn) -> None:
        """Commit what the open Kafka transaction holds, in the middle of a PostgreSQL transaction.

        The offsets record keeps the end of the last complete PostgreSQL transaction and
        says how many changes of this one Kafka now holds. The tracker confirms nothing of
        this transaction until its end is committed, so PostgreSQL resends it after a
        restart and the next session drops the changes counted here.
        """
        assert self.offsets is not None
        tracker = self.tracker
        started = time.monotonic()
        position = tracker.commit_started()  # the complete transactions before this one, if any
        lsn = position if position is not None else tracker.committed
        self.sink.send(self._offsets_record(lsn, TxnPosition(txn.final_lsn, txn.xid, txn.changes)))
        done = self._commit_sink(started)
        log.info("transaction_part_committed", xid=txn.xid, lsn=format_lsn(txn.final_lsn), changes=txn.changes,
                 events=self.batch_events, duration_ms=round((done - started) * 1000, 3))
        self.batch_events = 0
        self.batch_bytes = 0

    def _offsets_record(self, lsn: int, partial: TxnPosition | None = None) -> OffsetRecord:
        """The position record that ends a Kafka transaction (with the incremental snapshot's progress)."""
        assert self.offsets is not None
        incremental = self.incremental.state.to_doc() if self.incremental is not None else None
        return self.offsets.record(SourceOffset(lsn, self.last_txid, self.last_commit_ts_us, self.system_id,
                                                incremental=incremental, partial=partial))

    def _commit_sink(self, started: float, timeout_s: float | None = None) -> float:
        """Commit the sink transaction the tracker was told about (``commit_started``) and count it."""
        try:
            if self.sink.in_transaction:  # else nothing reached the sink: nothing to make durable
                self.sink.commit(timeout_s)
        except CdcdError:
            self.tracker.sink_aborted()
            self.metrics.kafka_aborted()
            raise
        self.tracker.commit_succeeded()
        done = time.monotonic()
        if self.incremental is not None:
            self.incremental.committed()
        self.stats.kafka_commits += 1
        if self.batch_events:
            self.metrics.kafka_committed(done - started, done - self.batch_started)
        return done

    def _encoder(self, relation: Relation) -> TableEncoder | None:
        try:
            return self.encoders[relation.oid]
        except KeyError:
            pass
        name = f"{relation.namespace}.{relation.name}"
        encoder = None
        if self.outbox is not None and self.outbox.handles_table_name(name):
            self.outbox_tables[relation.oid] = self.catalog.table_info(relation)
            log.info("outbox_table_captured", table=name, oid=relation.oid)
        elif self.table_filter(name):
            table = self.catalog.table_info(relation)
            encoder = TableEncoder(table, self.options)
            if encoder.fallback_columns:
                log.warning("unknown_column_type", table=name, columns=list(encoder.fallback_columns),
                            hint="Debezium has no converter for these types: the columns are left out, or carried "
                                 "as bytes of their text with include.unknown.datatypes=true; see docs/types.md")
            log.info("table_captured", table=name, topic=encoder.topic, oid=relation.oid)
        self.encoders[relation.oid] = encoder
        return encoder

    # -- status ------------------------------------------------------------------------------

    def _maybe_send_status(self) -> None:
        if time.monotonic() >= self._next_status:
            self._send_status(reply=False)

    def _send_status(self, *, reply: bool) -> None:
        tracker = self.tracker
        flush = tracker.confirmable()
        if self.toast is not None:  # before confirming: the cache must have seen up to what PostgreSQL forgets
            self.toast.on_position(flush)
        self.repl.send_status(tracker.received, flush, reply=reply)
        if tracker.reported(flush):
            log.debug("lsn_confirmed", lsn=format_lsn(flush))
        self._next_status = time.monotonic() + self._status_interval
        self.metrics.set_lsn(tracker.received, tracker.committed, tracker.confirmed)
        self.metrics.set_in_flight(self.batch_events, self.batch_bytes)
        if self.config.sink == "kafka":
            self.sink.poll()
            self.health.set_connected("kafka", not getattr(self.sink, "brokers_down", False))


SinkFactory = Callable[[Config], Sink]
