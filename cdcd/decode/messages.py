"""pgoutput messages as typed values.

The decoder (``cdcd.decode.pgoutput``) turns each XLogData payload into one of these
frozen dataclasses; nothing downstream ever looks at bytes again. LSNs are
plain ``int`` here (the hot path should not allocate ``Lsn`` objects);
timestamps are microseconds since the Unix epoch.

Reference: PostgreSQL "Logical Streaming Replication Protocol" message formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Union


class _UnchangedToast:
    """Marker for a TOASTed value an UPDATE did not touch (tuple kind ``u``)."""

    __slots__ = ()
    _instance: _UnchangedToast | None = None

    def __new__(cls) -> _UnchangedToast:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"

    def __reduce__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = _UnchangedToast()

# One column value: None is SQL NULL, str is the text output of the type,
# bytes the binary output (only with the ``binary`` option), UNCHANGED_TOAST
# a value PostgreSQL did not send.
Value = Union[str, bytes, None, _UnchangedToast]
TupleData = tuple[Value, ...]

# Relation.replica_identity values (pg_class.relreplident).
REPLICA_IDENTITY_DEFAULT: Final = "d"
REPLICA_IDENTITY_NOTHING: Final = "n"
REPLICA_IDENTITY_FULL: Final = "f"
REPLICA_IDENTITY_INDEX: Final = "i"


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_ts: int
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class RelationColumn:
    is_key: bool
    name: str
    type_oid: int
    type_modifier: int


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[RelationColumn, ...]
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Type:
    oid: int
    namespace: str
    name: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Insert:
    relation: Relation
    new: TupleData
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """``old_kind`` is ``'K'`` (old key only), ``'O'`` (whole old row) or None (not sent)."""

    relation: Relation
    old_kind: str | None
    old: TupleData | None
    new: TupleData
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    relation: Relation
    old_kind: str
    old: TupleData
    xid: int | None = None


TRUNCATE_CASCADE: Final = 1
TRUNCATE_RESTART_IDENTITY: Final = 2


@dataclass(frozen=True, slots=True)
class Truncate:
    options: int
    relations: tuple[Relation, ...]
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """``pg_logical_emit_message``; ``lsn`` is the message's own WAL position."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None


# Protocol version 2+: streaming of in-progress transactions.
@dataclass(frozen=True, slots=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    pass


@dataclass(frozen=True, slots=True)
class StreamCommit:
    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class StreamAbort:
    xid: int
    subxid: int


Message = Union[
    Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate, LogicalMessage,
    StreamStart, StreamStop, StreamCommit, StreamAbort,
]
