"""Where envelopes go: a transactional Kafka producer, or stdout for trying cdcd out.

A sink groups records into transactions: ``send`` stages, ``commit`` returns
only once every staged record is durable, and only then may the pipeline
confirm their LSN. ``abort`` forgets the staged records. ``commit_start`` lets
a commit run while the pipeline goes on (records sent meanwhile belong to the
next transaction); ``commit_finished`` / ``commit_wait`` settle it.
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

    @property
    def committing(self) -> bool:
        """A commit started by ``commit_start`` has not been settled yet."""

    @property
    def wake_fd(self) -> int | None:
        """A descriptor readable once a running commit returned (None: commits never run in the background)."""

    def commit(self, timeout_s: float | None = None) -> None:
        """Make everything staged durable, or raise (then nothing counts as delivered)."""

    def commit_start(self, timeout_s: float | None = None) -> None:
        """Begin making everything staged durable; records sent from now on go into the next transaction."""

    def commit_finished(self) -> bool:
        """True once per started commit that succeeded since the last call; raises when it failed. Never waits."""

    def commit_wait(self) -> None:
        """Wait for the started commit and settle it (raises when it failed)."""

    def abort(self) -> None: ...

    def poll(self) -> None:
        """Serve background work (delivery reports) between records."""

    def close(self) -> None: ...


class CommitsAtOnce:
    """The commit protocol for a sink whose ``commit`` is done when it returns (stdout, test and bench sinks).

    ``commit_start`` commits before returning and ``commit_finished`` reports that once;
    nothing ever runs in the background, so there is no descriptor to wake on and
    ``commit_wait`` has nothing to wait for.
    """

    _finished = False

    @property
    def committing(self) -> bool:
        return False

    @property
    def wake_fd(self) -> int | None:
        return None

    def commit(self, timeout_s: float | None = None) -> None:
        raise NotImplementedError

    def commit_start(self, timeout_s: float | None = None) -> None:
        self.commit(timeout_s)
        self._finished = True

    def commit_finished(self) -> bool:
        finished, self._finished = self._finished, False
        return finished

    def commit_wait(self) -> None:
        pass
