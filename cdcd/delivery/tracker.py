"""The LSN tracker: which WAL position may be confirmed to PostgreSQL.

Three positions, named for what they guarantee:

``received``
    the highest WAL end the walsender reported; reported as ``write``.
``staged``
    the end LSN of the last PostgreSQL transaction whose events are in the
    *open* Kafka transaction; not durable yet.
``committed``
    the end LSN of the last PostgreSQL transaction whose Kafka transaction
    committed; reported as ``flush``, so the slot may discard WAL up to it.

A PostgreSQL transaction too long for one Kafka transaction is committed
to Kafka in parts; a part never moves ``committed`` past the transactions
that ended before it.

The rule: ``committed`` only moves when Kafka acknowledged, or (idle
advance) to a keepalive's WAL end when nothing at all is in flight: no
PostgreSQL transaction open, nothing staged. The walsender sends frames in
order, so everything before that keepalive was either delivered to us and
committed, or held nothing we publish. A transaction still running on the
server commits past that point and is sent in full later. That is what keeps
an idle database's slot from retaining WAL.
"""

from __future__ import annotations


class LsnTracker:
    __slots__ = ("received", "staged", "committed", "confirmed", "in_transaction")

    def __init__(self, start: int = 0) -> None:
        self.received = start
        self.staged: int | None = None
        self.committed = start
        self.confirmed = start
        self.in_transaction = False

    def on_frame(self, wal_end: int) -> None:
        if wal_end > self.received:
            self.received = wal_end

    def on_begin(self) -> None:
        self.in_transaction = True

    def on_commit(self, end_lsn: int) -> None:
        """A PostgreSQL transaction ended and all its events were handed to the sink."""
        self.in_transaction = False
        self.staged = end_lsn

    def on_sink_committed(self) -> None:
        """The sink acknowledged everything staged."""
        if self.staged is not None:
            if self.staged > self.committed:
                self.committed = self.staged
            self.staged = None

    def on_part_committed(self) -> None:
        """Kafka committed part of the open PostgreSQL transaction (and what was staged before it).

        The complete transactions staged before it count as committed. The open one does
        not: PostgreSQL resends it whole until its end is confirmed, and the offsets record
        tells the next session how many of its changes to drop (``offsets.TxnPosition``).
        """
        self.on_sink_committed()

    def on_sink_aborted(self) -> None:
        self.staged = None

    def on_keepalive(self, wal_end: int) -> None:
        self.on_frame(wal_end)
        if not self.in_transaction and self.staged is None and wal_end > self.committed:
            self.committed = wal_end

    @property
    def idle(self) -> bool:
        return not self.in_transaction and self.staged is None

    def to_confirm(self) -> int | None:
        """The flush LSN to report, when it moved since the last report."""
        if self.committed > self.confirmed:
            return self.committed
        return None

    def mark_confirmed(self, lsn: int) -> None:
        self.confirmed = lsn
