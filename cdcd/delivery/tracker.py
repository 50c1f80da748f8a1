"""The LSN tracker: the one place that decides which WAL position may be confirmed.

Positions, named for what they guarantee:

``received``
    the highest WAL end the walsender reported; reported as ``write``.
``staged``
    the end LSN of the last PostgreSQL transaction (or non-transactional
    message) whose records are in the *open* sink transaction; not durable.
``committing``
    the position a sink commit in flight will make durable once it returns.
``committed``
    the end LSN of the last PostgreSQL transaction whose sink transaction
    committed; reported as ``flush``, so the slot may discard WAL up to it.
``confirmed``
    the ``flush`` last sent to PostgreSQL.

The rule (``confirmable``): report ``committed``. It moves only

* when a sink commit returned (``commit_succeeded``), to what that commit
  covered: a commit in the middle of a PostgreSQL transaction (a part of a huge
  one) covers the complete transactions staged before it, never the open one;
* when a PostgreSQL transaction ends that left nothing in the sink (every
  change filtered out, or already in Kafka) and nothing before it waits for a
  commit: it is as good as delivered;
* to a keepalive's WAL end when nothing at all is in flight (no PostgreSQL
  transaction open, nothing staged, no commit running). The walsender sends
  frames in order, so everything before that keepalive was either delivered and
  committed, or held nothing we publish; a transaction still running on the
  server commits past that point and is sent in full later. This idle advance
  keeps a quiet database's slot from retaining WAL.

The session tells the tracker what happened, in the order it happened, and
reads positions back; nothing else writes them. One tracker lives for the whole
process (``committed`` carries over reconnects); ``new_session`` forgets what
an ended session had in flight.
"""

from __future__ import annotations


class LsnTracker:
    __slots__ = ("_received", "_staged", "_committing", "_commit_running", "_committed", "_confirmed",
                 "_in_transaction", "_pending")

    def __init__(self, start: int = 0) -> None:
        self._received = start
        self._staged: int | None = None
        self._committing: int | None = None
        self._commit_running = False
        """A sink commit is in flight (it may cover records of the open transaction only)."""
        self._committed = start
        self._confirmed = start
        self._in_transaction = False
        self._pending = False
        """The open sink transaction holds something to commit (records, or progress to record)."""

    # -- positions (read only) ---------------------------------------------------------------

    @property
    def received(self) -> int:
        return self._received

    @property
    def staged(self) -> int | None:
        return self._staged

    @property
    def committing(self) -> int | None:
        return self._committing

    @property
    def commit_running(self) -> bool:
        return self._commit_running

    @property
    def committed(self) -> int:
        return self._committed

    @property
    def confirmed(self) -> int:
        return self._confirmed

    @property
    def in_transaction(self) -> bool:
        """A PostgreSQL transaction is open: no sink commit may cover its end yet."""
        return self._in_transaction

    @property
    def pending(self) -> bool:
        """The open sink transaction holds something a commit would make durable."""
        return self._pending

    @property
    def idle(self) -> bool:
        """Nothing in flight: no open PostgreSQL transaction, nothing staged, no commit running."""
        return not self._in_transaction and self._staged is None and not self._commit_running

    @property
    def commit_due(self) -> bool:
        """At a transaction boundary with something a sink commit would deliver."""
        return not self._in_transaction and (self._staged is not None or self._pending)

    # -- what the replication stream said ----------------------------------------------------

    def frame(self, wal_end: int) -> None:
        """An XLogData frame arrived."""
        if wal_end > self._received:
            self._received = wal_end

    def keepalive(self, wal_end: int) -> None:
        """A keepalive: the server has nothing before ``wal_end`` for us beyond what it sent."""
        self.frame(wal_end)
        if self.idle and wal_end > self._committed:
            self._committed = wal_end

    def transaction_began(self) -> None:
        self._in_transaction = True

    def transaction_ended(self, end_lsn: int) -> None:
        """A PostgreSQL transaction committed and every record of it was handed to the sink."""
        self._in_transaction = False
        self._stage(end_lsn)

    def message_ended(self, end_lsn: int) -> None:
        """A non-transactional logical message was handed to the sink; it is its own unit of delivery.

        It leaves an open PostgreSQL transaction open (and so uncommittable).
        """
        self._stage(end_lsn)

    def _stage(self, end_lsn: int) -> None:
        if self._staged is None or end_lsn > self._staged:
            self._staged = end_lsn
        if not self._pending and not self._commit_running:
            self._promote_staged()  # nothing of it (or before it) waits in the sink

    # -- what the sink did -------------------------------------------------------------------

    def sink_pending(self) -> None:
        """The open sink transaction now holds something to commit."""
        self._pending = True

    def commit_started(self) -> int | None:
        """A sink commit begins; returns the position it covers (None: no complete transaction).

        Everything pending goes into this commit. Whatever ends after this call is
        staged for the next commit.
        """
        if self._commit_running:
            raise AssertionError("a sink commit is already in flight")
        self._commit_running = True
        self._committing, self._staged = self._staged, None
        self._pending = False
        return self._committing

    def commit_succeeded(self) -> None:
        """The sink commit returned: what it covered is durable."""
        if not self._commit_running:
            return  # not this session's commit
        if self._committing is not None and self._committing > self._committed:
            self._committed = self._committing
        self._committing = None
        self._commit_running = False
        if self._staged is not None and not self._pending:
            self._promote_staged()  # ended meanwhile with nothing in the sink

    def sink_aborted(self) -> None:
        """The sink dropped its transaction (or a commit failed): nothing of it counts."""
        self._staged = None
        self._committing = None
        self._commit_running = False
        self._pending = False

    def _promote_staged(self) -> None:
        staged, self._staged = self._staged, None
        if staged is not None and staged > self._committed:
            self._committed = staged

    def new_session(self) -> None:
        """A new replication session starts: what the last one had in flight is resent by PostgreSQL."""
        self._in_transaction = False
        self._staged = None
        self._committing = None
        self._commit_running = False
        self._pending = False

    # -- what PostgreSQL is told -------------------------------------------------------------

    def confirmable(self) -> int:
        """The flush LSN that may be reported to PostgreSQL now."""
        return self._committed

    def reported(self, flush: int) -> bool:
        """A status update carried ``flush``; True when that moved the confirmed position."""
        if flush == self._confirmed:
            return False
        self._confirmed = flush
        return True
