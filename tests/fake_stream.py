"""Fakes for driving a ``StreamingSession`` without PostgreSQL or Kafka.

``captured(name)`` turns a recorded pgoutput capture (tests/data/pgoutput/, see
scripts/capture_pgoutput.py) into XLogData frames with the WAL positions the
messages themselves carry; ``FakeStream`` hands out a script of frames, idle
moments and actions; ``FakeSink`` keeps what was sent, committed and aborted and
fails on request; ``FakeCatalog`` answers ``table_info`` from the Relation message.
Nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cdcd.decode.messages import Begin, Commit, LogicalMessage, Relation, Type
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.delivery.offsets import OffsetRecord
from cdcd.delivery.sinks import CommitsAtOnce
from cdcd.errors import CdcdError, SinkError
from cdcd.source.tables import ColumnInfo, TableInfo
from cdcd.wire.frames import Keepalive, XLogData, copy_data
from tests.pgoutput_captures import records as payloads

IDLE = None
"""In a script: the socket has nothing to read right now."""



@dataclass(frozen=True)
class Unit:
    """One transaction (Begin … Commit) or one non-transactional message of a capture, as frames."""

    frames: tuple[XLogData, ...]
    end_lsn: int
    """Commit.end_lsn, or a non-transactional message's LSN + 1 (what may be confirmed after it)."""
    final_lsn: int | None
    xid: int | None
    kinds: tuple[str, ...]


def captured(name: str = "v1") -> list[Unit]:
    """The capture's transactions and non-transactional messages, in stream order."""
    decoder = PgOutputDecoder(1)
    units: list[Unit] = []
    frames: list[XLogData] = []
    kinds: list[str] = []
    begin: Begin | None = None
    for payload in payloads(name):
        msg = decoder.decode(payload)
        kinds.append(type(msg).__name__)
        if isinstance(msg, Begin):
            begin = msg
            position = msg.final_lsn
        elif isinstance(msg, Commit):
            position = msg.commit_lsn
        elif isinstance(msg, LogicalMessage):
            position = msg.lsn
        else:
            position = frames[-1].wal_start if frames else 0
        frames.append(XLogData(position, position, 0, memoryview(payload)))
        if isinstance(msg, Commit) or (isinstance(msg, LogicalMessage) and not msg.transactional and begin is None):
            end = msg.end_lsn if isinstance(msg, Commit) else msg.lsn + 1
            # The server's WAL end is at least the end of what it sends.
            units.append(Unit(tuple(XLogData(f.wal_start, end, 0, f.payload) for f in frames), end,
                              begin.final_lsn if begin is not None else None,
                              begin.xid if begin is not None else None, tuple(kinds)))
            frames, kinds, begin = [], [], None
    return units


def keepalive(wal_end: int, *, reply: bool = True) -> Keepalive:
    return Keepalive(wal_end, 0, reply)


Step = XLogData | Keepalive | Callable[[], None] | None


class FakeStream:
    """A replication connection reading a script; sets ``stop`` when the script ends (SIGTERM)."""

    def __init__(self, script: Iterable[Step], stop: threading.Event) -> None:
        self._script = iter(script)
        self._stop = stop
        self.statuses: list[tuple[int, int]] = []
        """Every standby status update sent: (write, flush)."""
        self.replies: list[int] = []
        """The flush position of the status update answering each keepalive that asked for one."""
        self._awaiting_reply = False
        self.waited_on: list[int | None] = []
        """The ``wake`` descriptor of each read that may wait (the session waits on a running commit too)."""

    def read_data(self, timeout: float, wake: int | None = None) -> bytes | None:
        """As the real connection: the next CopyData message's bytes."""
        frame = self.read(timeout, wake)
        return None if frame is None else copy_data(frame)

    def read(self, timeout: float, wake: int | None = None) -> XLogData | Keepalive | None:
        if timeout > 0:
            self.waited_on.append(wake)
        if self._awaiting_reply:
            raise AssertionError("a keepalive asked for a reply and got none")
        for step in self._script:
            if callable(step):
                step()  # an action (fail the next commit, SIGTERM, ...), then the next step
                continue
            if isinstance(step, Keepalive) and step.reply_requested:
                self._awaiting_reply = True
            return step
        self._stop.set()
        return None

    def send_status(self, write_lsn: int, flush_lsn: int, *, reply: bool = False) -> None:
        self.statuses.append((write_lsn, flush_lsn))
        if self._awaiting_reply:
            self.replies.append(flush_lsn)
            self._awaiting_reply = False

    @property
    def flushes(self) -> list[int]:
        return [flush for _, flush in self.statuses]


@dataclass
class FakeSink(CommitsAtOnce):
    """A transactional sink in memory; ``fail_commit`` makes the next commit fail and abort.

    Like the Kafka sink it refuses to commit when it holds no transaction. Commits are
    synchronous: ``commit_start`` commits at once and ``commit_finished`` reports it once.
    """

    open: list[Any] = field(default_factory=list)
    committed: list[list[Any]] = field(default_factory=list)
    aborted: list[list[Any]] = field(default_factory=list)
    fail_commit: CdcdError | None = None
    transaction_timeout_s: float | None = None
    transaction_age_s: float = 0.0
    """What the session reads to decide on committing a huge transaction in parts."""
    _in_transaction: bool = False

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def start(self) -> None:
        pass

    def send(self, record: Any) -> None:
        self._in_transaction = True
        self.open.append(record)

    def commit(self, timeout_s: float | None = None) -> None:
        if not self._in_transaction:
            raise SinkError("internal error: commit without a transaction")
        if self.fail_commit is not None:
            error, self.fail_commit = self.fail_commit, None
            self.abort()
            raise error
        self.committed.append(self.open)
        self.open = []
        self._in_transaction = False

    def abort(self) -> None:
        if self._in_transaction:
            self.aborted.append(self.open)
        self.open = []
        self._in_transaction = False

    def poll(self) -> None:
        pass

    def close(self) -> None:
        self.abort()

    @property
    def records(self) -> list[Any]:
        """Every committed record, offsets records left out."""
        return [r for batch in self.committed for r in batch if not isinstance(r, OffsetRecord)]

    @property
    def offsets(self) -> list[OffsetRecord]:
        return [r for batch in self.committed for r in batch if isinstance(r, OffsetRecord)]


@dataclass
class OverlappingSink(FakeSink):
    """A sink whose commits run in the background until the script says they returned.

    ``commit_start`` takes the open transaction; records sent meanwhile are held and
    open the next transaction only once the commit returned successfully (as the Kafka
    sink does). ``returns`` (a script action) lets the running commit return; with
    ``fail_commit`` set it fails instead, and the held records are dropped.
    """

    running: list[Any] | None = None
    held: list[Any] = field(default_factory=list)
    returned: bool = False
    wake: int = 99

    @property
    def committing(self) -> bool:
        return self.running is not None

    @property
    def wake_fd(self) -> int | None:
        return self.wake

    def send(self, record: Any) -> None:
        if self.running is not None:
            self.held.append(record)
        else:
            super().send(record)

    def commit_start(self, timeout_s: float | None = None) -> None:
        if not self._in_transaction or self.running is not None:
            raise SinkError("internal error: commit without a transaction")
        self.running, self.open, self._in_transaction = self.open, [], False
        self.returned = False

    def returns(self) -> None:
        self.returned = True

    def commit_finished(self) -> bool:
        if self.running is None or not self.returned:
            return False
        running, self.running = self.running, None
        held, self.held = self.held, []
        if self.fail_commit is not None:
            error, self.fail_commit = self.fail_commit, None
            self.aborted.append(running)
            raise error
        self.committed.append(running)
        for record in held:
            super().send(record)
        return True

    def commit_wait(self) -> None:
        self.returned = True

    def abort(self) -> None:
        if self.running is not None:
            self.aborted.append(self.running)
            self.running, self.held = None, []
        super().abort()


_BUILTIN = {16: "bool", 17: "bytea", 20: "int8", 21: "int2", 23: "int4", 25: "text", 1043: "varchar",
            1184: "timestamptz", 1700: "numeric"}


def _primary_key(relation: Relation) -> tuple[str, ...]:
    """The key flags of the Relation message; REPLICA IDENTITY FULL flags every column, so there the first."""
    if relation.replica_identity == "f":
        return (relation.columns[0].name,)
    return tuple(c.name for c in relation.columns if c.is_key)


class FakeCatalog:
    """``table_info`` from the Relation message alone: its key flags name the primary key."""

    def __init__(self, types: dict[int, tuple[str, str, tuple[str, ...] | None]] | None = None) -> None:
        self.conn = None
        self.types = dict(types or {})
        self.looked_up: list[str] = []

    @classmethod
    def for_capture(cls, name: str = "v1") -> FakeCatalog:
        """Enum types named by the capture's Type messages (``mood``) are enums; other types by name."""
        decoder = PgOutputDecoder(1)
        types: dict[int, tuple[str, str, tuple[str, ...] | None]] = {}
        for payload in payloads(name):
            msg = decoder.decode(payload)
            if isinstance(msg, Type):
                types[msg.oid] = (msg.name, "e", ("sad", "ok", "happy")) if msg.name == "mood" \
                    else (msg.name, "b", None)
        return cls(types)

    def table_info(self, relation: Relation) -> TableInfo:
        self.looked_up.append(relation.name)
        columns = []
        for col in relation.columns:
            name, kind, labels = self.types.get(col.type_oid, (_BUILTIN.get(col.type_oid, "unknown"), "b", None))
            columns.append(ColumnInfo(name=col.name, type_oid=col.type_oid, type_name=name,
                                      type_modifier=col.type_modifier, optional=not col.is_key, type_kind=kind,
                                      enum_values=labels))
        return TableInfo(oid=relation.oid, schema=relation.namespace, name=relation.name, columns=tuple(columns),
                         primary_key=_primary_key(relation),
                         replica_identity=relation.replica_identity)
