"""Where envelopes go: a transactional Kafka producer, or stdout for trying cdcd out.

A sink groups records into transactions: ``send`` stages, ``commit`` returns
only once every staged record is durable, and only then may the pipeline
confirm their LSN. ``abort`` forgets the staged records.
"""

from __future__ import annotations

from typing import Protocol

from cdcd.debezium.envelope import Record


class Sink(Protocol):
    @property
    def in_transaction(self) -> bool: ...

    def start(self) -> None:
        """Connect and get ready; raises a clear error when the destination is unusable."""

    def send(self, record: Record) -> None:
        """Stage a record, opening a transaction when none is open."""

    def commit(self, timeout_s: float | None = None) -> None:
        """Make everything staged durable, or raise (then nothing counts as delivered)."""

    def abort(self) -> None: ...

    def poll(self) -> None:
        """Serve background work (delivery reports) between records."""

    def close(self) -> None: ...
