"""The session's sink commits: when one starts, how it settles, and huge transactions in parts.

A commit starts only at a PostgreSQL transaction boundary, with the offsets record last
in its Kafka transaction (``docs/delivery.md``). With ``commit.overlap`` the sink commits
in the background while the session reads, decodes and encodes the next batch (the sink
holds those records until the commit returned); otherwise ``commit_start`` returns with
the commit done. The tracker is told each step (``commit_started``, ``commit_succeeded``,
``sink_aborted``) and alone decides what that lets PostgreSQL forget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from cdcd.delivery.offsets import OffsetRecord, TxnPosition
from cdcd.delivery.sinks import Sink
from cdcd.delivery.tracker import LsnTracker
from cdcd.errors import CdcdError, SinkError
from cdcd.ops.metrics import Metrics
from cdcd.session.transaction import OpenTransaction
from cdcd.snapshot.incremental import IncrementalSnapshot
from cdcd.wire.lsn import format_lsn

log = structlog.get_logger("cdcd.pipeline")

OffsetsRecord = Callable[[int, "TxnPosition | None"], OffsetRecord]
"""Builds the record that ends a Kafka transaction: the end LSN, and the position inside an open one."""


@dataclass(slots=True)
class Batch:
    """What the sink's open transaction holds since the last commit started."""

    events: int = 0
    bytes: int = 0
    started: float = 0.0
    """When its first record was sent (``time.monotonic()``)."""


@dataclass(frozen=True, slots=True)
class _Commit:
    """The sink commit in flight: when it started, and the batch it covers (for metrics and logs)."""

    started: float
    batch_started: float
    events: int
    incremental_key: list[Any] | None = None
    """The incremental snapshot's last key in this commit's offsets record (for the log)."""


class Committer:
    def __init__(self, sink: Sink, tracker: LsnTracker, batch: Batch, *, offsets_record: OffsetsRecord | None,
                 progress_unsaved: Callable[[], bool], incremental: IncrementalSnapshot | None, metrics: Metrics,
                 stats: Any) -> None:
        self._sink, self._tracker, self._batch = sink, tracker, batch
        self._offsets_record = offsets_record
        """None for a sink without offsets (stdout)."""
        self._progress_unsaved = progress_unsaved
        self._incremental, self._metrics, self._stats = incremental, metrics, stats
        self._in_flight: _Commit | None = None
        """The sink commit in flight (the tracker's ``commit_running``)."""
        self.chain = False
        """A background commit returned since the last one started: commit at the next boundary,
        idle socket or not (the batch is what arrived while it ran)."""

    def start(self, timeout_s: float | None = None) -> None:
        """Start committing everything staged (with its offsets record); the session reads on meanwhile."""
        tracker = self._tracker
        if self._progress_unsaved():
            tracker.sink_pending()
        pending = tracker.pending
        position = tracker.commit_started()
        self.chain = False
        if self._offsets_record is not None and pending and position is not None:
            self._sink.send(self._offsets_record(position, None))
            if self._incremental is not None:
                self._incremental.committed()  # its state is in this record; a failed commit ends the session
        self._begin(timeout_s)

    def now(self, timeout_s: float | None = None) -> None:
        """Commit what is staged and wait for it (shutdown)."""
        self.start(timeout_s)
        if self._tracker.commit_running:
            self.wait()

    def settle(self, *, background: bool = True) -> None:
        """Take the running commit's outcome, if it returned (never waits)."""
        try:
            finished = self._sink.commit_finished()
        except CdcdError:
            self._failed()
            raise
        if finished:
            self._returned()
            self.chain = background

    def wait(self) -> None:
        """Wait for the running commit's outcome."""
        try:
            self._sink.commit_wait()
        except CdcdError:
            self._failed()
            raise
        self.settle()

    def part(self, txn: OpenTransaction) -> None:
        """Commit what the open Kafka transaction holds, in the middle of a PostgreSQL transaction.

        The offsets record keeps the end of the last complete PostgreSQL transaction and
        says how many changes of this one Kafka now holds. The tracker confirms nothing of
        this transaction until its end is committed, so PostgreSQL resends it after a
        restart and the next session drops the changes counted here. Synchronous: a
        running commit is settled first, and this one is waited for.
        """
        assert self._offsets_record is not None
        tracker = self._tracker
        if tracker.commit_running:
            self.wait()
        started = time.monotonic()
        events = self._batch.events
        position = tracker.commit_started()  # the complete transactions before this one, if any
        lsn = position if position is not None else tracker.committed
        self._sink.send(self._offsets_record(lsn, TxnPosition(txn.final_lsn, txn.xid, txn.changes)))
        if self._incremental is not None:
            self._incremental.committed()
        self._begin(None)
        if tracker.commit_running:
            self.wait()
        log.info("transaction_part_committed", xid=txn.xid, lsn=format_lsn(txn.final_lsn), changes=txn.changes,
                 events=events, duration_ms=round((time.monotonic() - started) * 1000, 3))

    def _begin(self, timeout_s: float | None) -> None:
        """Hand the sink's open transaction to a commit; what the session sends next goes into the next one."""
        batch = self._batch
        incremental = self._incremental
        key = list(incremental.state.last_key) if incremental is not None and incremental.state.last_key else None
        self._in_flight = _Commit(time.monotonic(), batch.started, batch.events, key)
        batch.events = 0
        batch.bytes = 0
        sink = self._sink
        if sink.committing:
            raise SinkError("internal error: the sink is still committing a transaction the session has settled")
        if not sink.in_transaction:  # nothing reached the sink: nothing to make durable
            self._returned()
            return
        try:
            sink.commit_start(timeout_s)
        except CdcdError:
            self._failed()
            raise
        if not sink.committing:  # it committed before returning (commit.overlap off, stdout)
            self.settle(background=False)

    def _failed(self) -> None:
        self._tracker.sink_aborted()
        self._metrics.kafka_aborted()

    def _returned(self) -> None:
        """The sink commit returned: the tracker moves what it covered to committed."""
        commit = self._in_flight
        self._tracker.commit_succeeded()
        done = time.monotonic()
        self._stats.kafka_commits += 1
        if commit is not None:
            if commit.events:
                self._metrics.kafka_committed(done - commit.started, done - commit.batch_started)
            log.debug("batch_committed", events=commit.events, lsn=format_lsn(self._tracker.committed),
                      duration_ms=round((done - commit.started) * 1000, 3),
                      **({"incremental_last_key": commit.incremental_key} if commit.incremental_key else {}))
        self._in_flight = None
