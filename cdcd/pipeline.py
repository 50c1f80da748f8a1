"""The pipeline: WAL frames → decoded messages → envelopes → sink → confirmed LSN.

One streaming session reads frames in order and hands records to the sink.
Kafka transactions are committed only at PostgreSQL transaction boundaries,
whenever no commit is running and a complete transaction is staged: as soon as
the socket has nothing more to read, right after a background commit returned
(``commit.overlap``: the sink commits while the session reads, decodes and
encodes the next batch, whose records it holds until then), or when a batch
grows past ``max.batch.events`` / ``max.batch.ms`` (docs/delivery.md,
"Committing while the next batch streams"). What may be confirmed is the tracker's to say
(``cdcd.delivery.tracker``); the session only tells it what happened. Its
collaborators are built by ``cdcd.session.build``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from cdcd.config import Config
from cdcd.debezium.envelope import (
    TableEncoder,
    TransactionContext,
    transaction_begin_record,
    transaction_end_record,
)
from cdcd.decode.messages import Begin, Commit, Delete, Insert, LogicalMessage, Origin, Relation, Truncate, Update
from cdcd.delivery.offsets import OffsetRecord, SourceOffset, TxnPosition
from cdcd.delivery.sinks import Sink
from cdcd.errors import CdcdError
from cdcd.session.build import SessionParts
from cdcd.session.commits import Batch, Committer
from cdcd.session.status import StatusReporter
from cdcd.session.transaction import COUNTED, OpenTransaction
from cdcd.source.tables import TableInfo
from cdcd.wire.frames import Keepalive, parse_copy_data
from cdcd.wire.lsn import format_lsn

log = structlog.get_logger("cdcd.pipeline")


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

    def __init__(self, parts: SessionParts) -> None:
        self.config = config = parts.config
        self.repl, self.sink, self.tracker, self.offsets = parts.repl, parts.sink, parts.tracker, parts.offsets
        self.stats, self.metrics, self.health = parts.surfaces.stats, parts.surfaces.metrics, parts.surfaces.health
        self.decoder, self.relations, self.logical, self.signals = (parts.decoder, parts.relations, parts.logical,
                                                                    parts.signals)
        self.heartbeat, self.outbox, self.unwrap = parts.heartbeat, parts.outbox, parts.unwrap
        self.toast, self.incremental = parts.toast, parts.incremental
        self.lanes = parts.lanes
        self._part_after_s = parts.part_after_s
        start = parts.start
        self.last_commit_lsn = start.last_commit_lsn
        self.skip_until = start.skip_until
        self.resume = start.resume
        """The PostgreSQL transaction Kafka holds parts of, from the stored offsets record."""
        self.system_id = start.system_id
        self.status = StatusReporter(parts.repl, parts.tracker, parts.sink, kafka=config.sink == "kafka",
                                     toast=parts.toast, metrics=self.metrics, health=self.health,
                                     interval_s=config.status_interval_ms / 1000.0)
        self._dropping = False
        """True while handling a change Kafka already holds: its records are not sent again."""
        self.last_txid: int | None = None
        self.last_commit_ts_us: int | None = None
        self.txn: OpenTransaction | None = None
        self.batch = Batch()
        self.commits = Committer(parts.sink, parts.tracker, self.batch,
                                 offsets_record=self._offsets_record if parts.offsets is not None else None,
                                 progress_unsaved=self._progress_unsaved, incremental=parts.incremental,
                                 metrics=self.metrics, stats=self.stats)

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
        repl, tracker, sink, commits, batch = self.repl, self.tracker, self.sink, self.commits, self.batch
        max_batch_s = self.config.max_batch_ms / 1000.0
        max_events = self.config.max_batch_events
        lanes = self.lanes
        change = lanes.core.change if lanes is not None else None
        lane_rows = 0
        # A running commit, a transaction due in parts and the clock are looked at when the
        # stream is idle, after each frame of the general path and every 64 rows the lanes
        # take: per row they cost more than the row itself.
        while not stop.is_set():
            data = repl.read_data(0)
            if data is None:
                # Nothing more to read right now.
                if self._part_due():
                    self.commits.part(self.txn)  # type: ignore[arg-type]
                if tracker.commit_running:
                    commits.settle()
                if self.heartbeat.due() and not tracker.in_transaction:
                    self.heartbeat.beat(self._send)
                if tracker.commit_due and not tracker.commit_running:
                    commits.start()
                if self.status.due():
                    self._send_status()
                self.health.loop_tick()
                # Wait for WAL, or for the running commit to return (then the next one may start).
                data = repl.read_data(min(0.2, self.status.interval_s),
                                      sink.wake_fd if tracker.commit_running else None)
                if data is None:
                    continue
            records = change(data) if change is not None else None
            if records is not None:
                # A row change the compiled lane took whole (cdcd.session.lanes). Inside a
                # transaction no commit is due, and its WAL end reaches the tracker with the
                # Commit frame (or the next status update): only the per-row work is left here.
                self.txn.changes += 1  # type: ignore[union-attr]
                if records:
                    if batch.events == 0:
                        batch.started = time.monotonic()
                        tracker.sink_pending()
                    for record in records:
                        sink.send(record)
                    batch.events += len(records)
                    batch.bytes += lanes.core.nbytes  # type: ignore[union-attr]
                lane_rows += 1
                if lane_rows & 63 == 0:
                    if self._part_due():
                        self.commits.part(self.txn)  # type: ignore[arg-type]
                    if tracker.commit_running:
                        self._settle_commit(max_events, max_batch_s)
                    if self.status.due():
                        sink.poll()
                        self._send_status()
                        self.health.loop_tick()
                continue
            frame = parse_copy_data(data)
            if type(frame) is Keepalive:
                tracker.keepalive(frame.wal_end)
                if frame.reply_requested:
                    self._send_status()
                continue
            tracker.frame(frame.wal_end)
            self._handle(self.decoder.decode(frame.payload), frame.wal_start)  # type: ignore[union-attr]
            if lanes is not None:
                lanes.sync(self.txn, self.last_commit_lsn)
            if tracker.commit_running:
                self._settle_commit(max_events, max_batch_s)
            if tracker.commit_due and not tracker.commit_running and (
                    commits.chain or batch.events >= max_events or time.monotonic() - batch.started >= max_batch_s):
                commits.start()
            if self.status.due():
                sink.poll()
                self._send_status()
                self.health.loop_tick()
        self._shutdown()

    def _part_due(self) -> bool:
        """A PostgreSQL transaction is open and its Kafka transaction nears the broker's timeout.

        Not while the changes a previous run already committed in parts are being dropped:
        a part records how many changes Kafka holds, never fewer than it does.
        """
        txn = self.txn
        return self._part_after_s is not None and txn is not None and not txn.skip and txn.changes >= txn.held \
            and self.sink.in_transaction and self.sink.transaction_age_s >= self._part_after_s  # type: ignore[attr-defined]

    def _settle_commit(self, max_events: int, max_batch_s: float) -> None:
        """A commit runs: note whether it returned, and wait for it once the next batch is full."""
        commits, batch = self.commits, self.batch
        commits.settle()
        if self.tracker.commit_running and batch.events and (
                batch.events >= max_events or time.monotonic() - batch.started >= max_batch_s):
            commits.wait()  # a slow commit: hold no more behind it

    def _shutdown(self) -> None:
        """Settle the running commit, drop a partial transaction, commit complete ones, confirm."""
        tracker = self.tracker
        try:
            if tracker.commit_running:
                self.commits.wait()
            if tracker.in_transaction:
                self.sink.abort()
                tracker.sink_aborted()
                self.metrics.kafka_aborted()
            elif tracker.commit_due:
                self.commits.now(timeout_s=self.config.shutdown_timeout_ms / 1000)
        except CdcdError as exc:
            # Not confirmed, so PostgreSQL sends it again on the next start: nothing is lost.
            log.warning("shutdown_commit_failed", error=str(exc))
            self.sink.abort()
            tracker.sink_aborted()
        self._send_status()
        self.stats.streaming = False
        self.health.set_streaming(False)

    # -- messages ----------------------------------------------------------------------------

    def _handle(self, msg: object, wal_start: int) -> None:
        kind = type(msg)
        txn = self.txn
        if txn is not None and not txn.skip and (
                kind in COUNTED or (kind is LogicalMessage and msg.transactional)):  # type: ignore[attr-defined]
            # A change of the open transaction: counted, so a transaction committed to Kafka in
            # parts can resume after a restart exactly after the last part Kafka holds.
            txn.changes += 1
            self._dropping = txn.changes <= txn.held
            try:
                self._handle_message(kind, msg, wal_start)
            finally:
                self._dropping = False
            if self._part_due():
                self.commits.part(txn)
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
            self.txn = OpenTransaction(msg.xid, msg.commit_ts, wal_start, msg.final_lsn, skip=skip)
            resume = self.resume
            if resume is not None and not skip and msg.final_lsn == resume.final_lsn:
                self.txn.held = resume.changes
                log.info("transaction_resumed", xid=msg.xid, lsn=format_lsn(msg.final_lsn),
                         changes_in_kafka=resume.changes)
            if self.toast is not None and not skip:
                self.toast.began(msg.xid)
            if not skip:
                # As Debezium: BEGIN for every transaction pgoutput sends, even when all its changes
                # are filtered out or skipped (END then counts 0); Kafka has it already when resumed.
                self._metadata(self.txn, announce=not self.txn.held)
        elif kind is Commit:
            assert isinstance(msg, Commit)
            self._commit(msg)
        elif kind is Relation:
            assert isinstance(msg, Relation)
            self.relations.described(msg)
        elif kind is Truncate:
            assert isinstance(msg, Truncate)
            if self.txn is not None and self.txn.skip:
                return
            for relation in msg.relations:
                if self.toast is not None:
                    self.toast.truncate(relation)
                if self.incremental is not None:
                    self.incremental.truncated(relation.oid)
                encoder = self.relations.encoder(relation)
                if encoder is not None:
                    self._emit(encoder, relation, wal_start, "truncate")
        elif kind is Origin:
            assert isinstance(msg, Origin)
            if self.txn is not None:
                self.txn.origin, self.txn.origin_lsn = msg.name, msg.commit_lsn
        elif kind is LogicalMessage:
            assert isinstance(msg, LogicalMessage)
            if self.logical.handle(msg, self.txn, self.last_commit_lsn, self.skip_until, self._metadata, self._send):
                # Position just past the message: confirming its own LSN would make PostgreSQL send it again.
                self.tracker.message_ended(msg.lsn + 1)

    def _change(self, msg: Insert | Update | Delete, wal_start: int) -> None:
        if self.txn is not None and self.txn.skip:
            return
        incremental = self.incremental
        if incremental is not None and not self._dropping:  # a held change's signal was carried out already
            oid = msg.relation.oid
            if oid == self.relations.signal_oid and self.signals is not None:
                self.signals.row(msg, wal_start, self.last_commit_lsn, self._send)
            elif incremental.window_open and oid == incremental.table_oid:
                incremental.deduplicate(msg)
        encoder = self.relations.encoder(msg.relation)
        if encoder is None:
            table = self.relations.outbox_tables.get(msg.relation.oid)
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

    def _outbox_change(self, table: TableInfo, msg: Insert | Update | Delete, wal_start: int) -> None:
        """Outbox tables: inserts are routed events; updates are warned about, deletes ignored."""
        router = self.outbox
        assert router is not None and self.txn is not None
        if type(msg) is Insert:
            source = self.txn.source(wal_start, self.last_commit_lsn)
            for record in router.route_row(table, msg.new, source):
                self._send(record)
            self.stats.events += 1
        elif type(msg) is Update:
            router.on_update(table)
            getattr(log, router.update_log_level)("outbox_update_ignored", table=table.qualified_name,
                                                  detail=router.warning_for_update(table))
        else:
            router.on_delete(table)

    def _emit(self, encoder: TableEncoder, relation: Relation, lsn: int, op: str, *args: object) -> None:
        txn = self.txn
        if txn is None:
            raise AssertionError("row change outside a transaction")
        metadata = self._metadata(txn)
        records = getattr(encoder, op)(*args, txn.event_source(lsn, self.last_commit_lsn), metadata)
        unwrap = self.unwrap
        for record in records:
            if unwrap is not None:
                record = unwrap(record)
                if record is None:
                    continue
            self._send(record)
        self.stats.events += 1
        self.relations.counted(relation, op)

    def _metadata(self, txn: OpenTransaction, *, announce: bool = True) -> TransactionContext | None:
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
        batch = self.batch
        if batch.events == 0:
            batch.started = time.monotonic()
            self.tracker.sink_pending()
        self.sink.send(record)  # type: ignore[arg-type]
        batch.events += 1
        batch.bytes += len(record.value or b"") + len(record.key or b"")  # type: ignore[attr-defined]

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
        if self.lanes is not None:
            self.stats.events += self.lanes.taken()
        self.stats.last_commit_ts_us = msg.commit_ts
        self.metrics.transaction_processed(msg.commit_ts)
        self.txn = None

    def _progress_unsaved(self) -> bool:
        """The incremental snapshot moved on since the last offsets record: Kafka must hear of it."""
        return self.offsets is not None and self.incremental is not None and self.incremental.dirty

    def _offsets_record(self, lsn: int, partial: TxnPosition | None) -> OffsetRecord:
        """The position record that ends a Kafka transaction (with the incremental snapshot's progress)."""
        assert self.offsets is not None
        incremental = self.incremental.state.to_doc() if self.incremental is not None else None
        return self.offsets.record(SourceOffset(lsn, self.last_txid, self.last_commit_ts_us, self.system_id,
                                                incremental=incremental, partial=partial))

    # -- status ------------------------------------------------------------------------------

    def _flush_counts(self) -> None:
        """Publish the per-table event counts; a Prometheus update takes a lock, so once per status update."""
        if self.lanes is not None:
            self.stats.events += self.lanes.taken()
            self.lanes.publish(self.relations.counted)
        self.relations.flush_counts()

    def _send_status(self) -> None:
        if self.lanes is not None:
            self.tracker.frame(self.lanes.core.wal_end)  # the WAL end of the last frame a lane took
        self._flush_counts()
        self.status.send(self.batch.events, self.batch.bytes)


SinkFactory = Callable[[Config], Sink]
"""How the daemon makes a sink for each session."""
