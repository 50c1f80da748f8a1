"""The PostgreSQL transaction being streamed: its identity, position and what Kafka already holds of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdcd.debezium.envelope import TransactionContext
from cdcd.debezium.source_info import SourceInfo
from cdcd.decode.messages import Delete, Insert, Truncate, Update

COUNTED = (Insert, Update, Delete, Truncate)
"""What ``TxnPosition.changes`` counts (with transactional logical messages): decoding the
same WAL again yields them in the same order, unlike Relation messages, which pgoutput
sends once per walsender session."""


@dataclass(slots=True)
class OpenTransaction:
    xid: int
    commit_ts_us: int
    begin_lsn: int
    final_lsn: int
    """The commit record's start (``Begin.final_lsn``)."""
    skip: bool = False
    """Kafka already holds this transaction (it ended at or before the stored offset)."""
    held: int = 0
    """The first ``held`` changes are already in Kafka (committed in parts before a restart)."""
    changes: int = 0
    """Row changes, truncates and transactional messages seen so far (``TxnPosition.changes``)."""
    metadata: TransactionContext | None = None
    origin: str | None = None
    origin_lsn: int | None = None
    _event_source: SourceInfo | None = field(default=None, repr=False, compare=False)

    def event_source(self, lsn: int, last_commit_lsn: int | None) -> SourceInfo:
        """``source(lsn, last_commit_lsn)`` for an encoder that reads it at once: one object per transaction.

        The same ``SourceInfo`` comes back, updated, on every call, so it is valid only
        until the next one; the envelope encoders copy what they need into the record.
        """
        src = self._event_source
        if src is None:
            src = self._event_source = self.source(lsn, last_commit_lsn)
        else:
            src.lsn, src.last_commit_lsn, src.origin, src.origin_lsn = (
                lsn, last_commit_lsn, self.origin, self.origin_lsn)
        return src

    def source(self, lsn: int, last_commit_lsn: int | None) -> SourceInfo:
        """The ``source`` position of an event of this transaction at ``lsn``."""
        return SourceInfo(ts_us=self.commit_ts_us, txid=self.xid, lsn=lsn, last_commit_lsn=last_commit_lsn,
                          origin=self.origin, origin_lsn=self.origin_lsn)
