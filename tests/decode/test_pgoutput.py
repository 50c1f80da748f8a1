"""Tests for cdcd.decode.pgoutput: captured PostgreSQL 15 bytes, then hand-built edge cases.

tests/data/pgoutput/*.bin were captured by scripts/capture_pgoutput.py (its
docstring has the file format and the workload these assertions rely on).
OIDs and xids differ between captures, so tests compare them with each other,
never with literals; names, values, built-in type OIDs and type modifiers are
stable.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TypeVar

import pytest

from cdcd.decode.messages import (
    TRUNCATE_CASCADE,
    TRUNCATE_RESTART_IDENTITY,
    UNCHANGED_TOAST,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    RelationColumn,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Type,
    Update,
)
from cdcd.decode.pgoutput import MessageType, PgOutputDecoder
from cdcd.errors import ConfigError, DecodeError
from tests.pgoutput_captures import records

M = TypeVar("M")

INT2, INT4, TEXT, BYTEA, VARCHAR, NUMERIC, TIMESTAMPTZ = 21, 23, 25, 17, 1043, 1700, 1184
ORIGIN_COMMIT_TS = int(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()) * 1_000_000
BIG_NOTE = "".join(hashlib.md5(str(g).encode()).hexdigest() for g in range(1, 401))



@cache
def decoded(name: str, version: int) -> tuple[Message, ...]:
    decoder = PgOutputDecoder(version)
    return tuple(decoder.decode(m) for m in records(name))


def of(messages: Sequence[Message], cls: type[M]) -> list[M]:
    return [m for m in messages if isinstance(m, cls)]


def rel(messages: Sequence[Message], name: str) -> Relation:
    """The first Relation message for table ``name``."""
    return next(r for r in of(messages, Relation) if r.name == name)


def changes(messages: Sequence[Message], table: str) -> list[Insert | Update | Delete]:
    return [m for m in messages if isinstance(m, Insert | Update | Delete) and m.relation.name == table]


# -- captured protocol version 1 --------------------------------------------


def test_v1_message_sequence() -> None:
    tags = "".join(chr(m[0]) for m in records("v1"))
    assert tags == "BYYRIICBICBUCBUCBUCBRIIUDCBDCBRIIRICBRRTCBMICMBOICBYYRIC"
    assert [type(m).__name__ for m in decoded("v1", 1)][:6] == [
        "Begin", "Type", "Type", "Relation", "Insert", "Insert",
    ]


def test_v1_begin_commit_pairs() -> None:
    msgs = decoded("v1", 1)
    begins, commits = of(msgs, Begin), of(msgs, Commit)
    assert len(begins) == len(commits) == 12
    assert len({b.xid for b in begins}) == 12
    for begin, commit in zip(begins, commits):
        assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
        assert begin.commit_ts == commit.commit_ts
        assert commit.flags == 0
    # Unix-epoch microseconds (not 2000-based): the capture was made after 2024.
    assert all(c.commit_ts >= ORIGIN_COMMIT_TS for c in commits)


def test_v1_types_enum_and_domain() -> None:
    msgs = decoded("v1", 1)
    mood, posint = of(msgs, Type)[:2]
    assert (mood.namespace, mood.name, mood.xid) == ("public", "mood", None)
    # A domain is announced with its own oid and its base type's name.
    assert (posint.namespace, posint.name) == ("pg_catalog", "int4")
    customers = rel(msgs, "customers")
    assert customers.columns[3].type_oid == mood.oid
    assert customers.columns[4].type_oid == posint.oid


def test_v1_relations() -> None:
    msgs = decoded("v1", 1)
    customers = rel(msgs, "customers")
    assert (customers.namespace, customers.name, customers.replica_identity, customers.xid) == (
        "public", "customers", "d", None,
    )
    assert [(c.name, c.is_key) for c in customers.columns] == [
        ("id", True), ("name", False), ("email", False), ("mood", False), ("visits", False), ("note", False),
    ]
    assert customers.columns[:3] == (
        RelationColumn(True, "id", INT4, -1),
        RelationColumn(False, "name", TEXT, -1),
        RelationColumn(False, "email", VARCHAR, 124),  # varchar(120): typmod is length + 4
    )
    orders = rel(msgs, "orders_full")
    assert orders.replica_identity == "f"
    assert orders.columns == (
        RelationColumn(True, "id", INT4, -1),
        RelationColumn(True, "customer", INT4, -1),
        RelationColumn(True, "amount", NUMERIC, (10 << 16 | 2) + 4),  # numeric(10, 2)
        RelationColumn(True, "placed_at", TIMESTAMPTZ, -1),
    )


def test_v1_inserts_resolve_cached_relation_and_nulls() -> None:
    msgs = decoded("v1", 1)
    first, second, third = of(changes(msgs, "customers"), Insert)[:3]
    assert first.relation is rel(msgs, "customers")
    assert first.new == ("1", "alice", "alice@example.com", "happy", "3", None)
    assert second.new == ("2", "bob", None, "sad", None, None)
    assert third.new == ("3", "carol", "carol@example.com", "ok", "1", BIG_NOTE)
    assert all(i.xid is None for i in of(msgs, Insert))


def test_v1_updates_and_deletes() -> None:
    msgs = decoded("v1", 1)
    plain, key_change, toast = of(changes(msgs, "customers"), Update)
    assert (plain.old_kind, plain.old) == (None, None)
    assert plain.new == ("1", "alice2", "alice@example.com", "happy", "3", None)
    # Primary key change under REPLICA IDENTITY DEFAULT: old key, other columns null.
    assert key_change.old_kind == "K"
    assert key_change.old == ("2", None, None, None, None, None)
    assert key_change.new == ("20", "bob", None, "sad", None, None)
    # The TOASTed note was not touched, so it is not sent.
    assert toast.new == ("3", "carol", "carol@example.com", "ok", "5", UNCHANGED_TOAST)
    assert toast.old is None

    (delete_key,) = of(changes(msgs, "customers"), Delete)
    assert (delete_key.old_kind, delete_key.old) == ("K", ("20", None, None, None, None, None))

    orders = changes(msgs, "orders_full")
    assert [type(m) for m in orders] == [Insert, Insert, Update, Delete]
    update, delete = orders[2], orders[3]
    assert isinstance(update, Update) and isinstance(delete, Delete)
    assert update.old_kind == "O"
    assert update.old == ("1", "1", "10.50", "2024-01-02 03:04:05+00")
    assert update.new == ("1", "1", "11.25", "2024-01-02 03:04:05+00")
    assert (delete.old_kind, delete.old) == ("O", ("2", "3", None, None))


def test_v1_truncate_cascade_restart_identity() -> None:
    msgs = decoded("v1", 1)
    (truncate,) = of(msgs, Truncate)
    assert truncate.options == TRUNCATE_CASCADE | TRUNCATE_RESTART_IDENTITY
    assert [r.name for r in truncate.relations] == ["parent", "child"]
    # Resolved from the cache: the Relation messages sent just before it.
    index = msgs.index(truncate)
    assert truncate.relations == tuple(msgs[index - 2 : index])
    assert truncate.xid is None


def test_v1_logical_messages() -> None:
    msgs = decoded("v1", 1)
    tx, nontx = of(msgs, LogicalMessage)
    assert (tx.transactional, tx.prefix, tx.content, tx.xid) == (True, "cdcd.tx", b"hello in tx", None)
    assert isinstance(msgs[msgs.index(tx) - 1], Begin)
    (commit,) = [m for m in msgs[msgs.index(tx) :] if isinstance(m, Commit)][:1]
    assert tx.lsn < commit.commit_lsn
    assert (nontx.transactional, nontx.prefix, nontx.content) == (False, "cdcd.nontx", b"\x00\xff\x01")
    # Non-transactional: sent on its own, outside Begin/Commit.
    assert isinstance(msgs[msgs.index(nontx) - 1], Commit)
    assert isinstance(msgs[msgs.index(nontx) + 1], Begin)


def test_v1_origin() -> None:
    msgs = decoded("v1", 1)
    (origin,) = of(msgs, Origin)
    assert origin == Origin(commit_lsn=0x1234ABCD, name="upstream_a")
    begin = msgs[msgs.index(origin) - 1]
    assert isinstance(begin, Begin)
    # The commit time was set by pg_replication_origin_xact_setup: checks the epoch shift exactly.
    assert begin.commit_ts == ORIGIN_COMMIT_TS
    insert = msgs[msgs.index(origin) + 1]
    assert isinstance(insert, Insert) and insert.new[:2] == ("5", "eve")


def test_v1_relation_resent_after_alter_table() -> None:
    decoder = PgOutputDecoder()
    msgs = [decoder.decode(m) for m in records("v1")]
    old, new = [r for r in of(msgs, Relation) if r.name == "customers"]
    assert old.oid == new.oid
    assert new.columns[:6] == old.columns
    assert new.columns[6] == RelationColumn(False, "tier", INT2, -1)
    assert decoder.relations[new.oid] is new
    inserts = of(changes(msgs, "customers"), Insert)
    assert inserts[-1].relation is new
    assert inserts[-1].new == ("6", "frank", None, None, None, None, "2")
    assert inserts[0].relation is old  # earlier messages keep the shape they were decoded with


# -- captured protocol version 2 (streaming) ----------------------------------


def test_v2_non_streamed_part_matches_v1() -> None:
    v1 = decoded("v1", 1)
    assert decoded("v2", 2)[: len(v1)] == v1


def test_v2_xid_only_inside_stream_blocks() -> None:
    in_stream = False
    seen_start: set[int] = set()
    for msg in decoded("v2", 2):
        if isinstance(msg, StreamStart):
            assert not in_stream
            assert msg.first_segment == (msg.xid not in seen_start)
            seen_start.add(msg.xid)
            in_stream = True
        elif isinstance(msg, StreamStop):
            assert in_stream
            in_stream = False
        elif isinstance(msg, Relation | Type | Insert | Update | Delete | Truncate | LogicalMessage):
            assert (msg.xid is not None) == in_stream
        else:
            assert not in_stream or isinstance(msg, Origin)
    assert not in_stream
    assert len(seen_start) == 3


def test_v2_streamed_commit() -> None:
    msgs = decoded("v2", 2)
    start = of(msgs, StreamStart)[0]
    xid = start.xid
    mine = [m for m in msgs if getattr(m, "xid", None) == xid]
    rows = [m for m in mine if isinstance(m, Insert) and m.relation.name == "bulk"]
    assert [r.new for r in rows] == [(str(g), "ok", f"row {g}") for g in range(1, 601)]
    assert rows[0].relation.xid is None  # the cache keeps the shape, not the xid
    (update,) = of(mine, Update)
    assert (update.old_kind, update.new) == (None, ("1", "ok", "changed"))
    (delete,) = of(mine, Delete)
    assert (delete.old_kind, delete.old) == ("K", ("2", None, None))
    (message,) = of(mine, LogicalMessage)
    assert (message.transactional, message.prefix, message.content) == (True, "cdcd.stream", b"in stream")
    (truncate,) = of(mine, Truncate)
    assert (truncate.options, [r.name for r in truncate.relations]) == (0, ["scratch"])
    bulk = next(r for r in of(mine, Relation) if r.name == "bulk")
    assert bulk.xid == xid and bulk.columns[2] == RelationColumn(False, "payload", TEXT, -1)
    (commit,) = [c for c in of(msgs, StreamCommit) if c.xid == xid]
    assert commit.flags == 0 and commit.commit_lsn < commit.end_lsn
    assert commit.commit_ts > ORIGIN_COMMIT_TS
    assert StreamStart(xid, False) in msgs  # the transaction spans several blocks


def test_v2_streamed_rollback_and_subtransaction_abort() -> None:
    msgs = decoded("v2", 2)
    _, rolled_back, with_savepoint = [s.xid for s in of(msgs, StreamStart) if s.first_segment]
    aborts = of(msgs, StreamAbort)
    assert aborts == [StreamAbort(rolled_back, rolled_back), StreamAbort(with_savepoint, aborts[1].subxid)]
    assert aborts[1].subxid != with_savepoint
    assert rolled_back not in {c.xid for c in of(msgs, StreamCommit)}
    assert with_savepoint in {c.xid for c in of(msgs, StreamCommit)}
    # Inside a stream block a change carries the xid of its (sub)transaction.
    bulk = {m.new[0]: m.xid for m in of(msgs, Insert) if m.relation.name == "bulk"}
    assert bulk["10001"] == rolled_back
    assert bulk["20001"] == with_savepoint
    assert bulk["20002"] == aborts[1].subxid
    assert bulk["30001"] not in (None, with_savepoint, aborts[1].subxid)


def test_v2_stream_messages_need_protocol_2() -> None:
    decoder = PgOutputDecoder(1)
    with pytest.raises(DecodeError, match="protocol_version 2"):
        for m in records("v2"):
            decoder.decode(m)


# -- captured binary mode ------------------------------------------------------


def test_binary_tuple_values() -> None:
    msgs = decoded("binary", 1)
    first, second = of(msgs, Insert)
    assert [c.type_oid for c in first.relation.columns] == [INT4, BYTEA, TEXT, TIMESTAMPTZ]
    id_, data, label, at = first.new
    assert (id_, data, label) == (struct.pack(">i", 1), b"\x00\xff", b"x")
    assert isinstance(at, bytes)
    assert struct.unpack(">q", at)[0] + 946_684_800 * 1_000_000 == ORIGIN_COMMIT_TS
    assert second.new == (struct.pack(">i", 2), None, None, None)


# -- robustness on real messages -----------------------------------------------


def _samples() -> list[tuple[str, int, int]]:
    """(capture, version, index) of the first message of each kind, in and out of stream blocks."""
    seen: set[tuple[int, bool]] = set()
    out: list[tuple[str, int, int]] = []
    for name, version in (("v1", 1), ("v2", 2), ("binary", 1)):
        in_stream = False
        for i, (raw, msg) in enumerate(zip(records(name), decoded(name, version))):
            key = (raw[0], in_stream)
            if key not in seen:
                seen.add(key)
                out.append((name, version, i))
            in_stream = isinstance(msg, StreamStart) or (in_stream and not isinstance(msg, StreamStop))
    return out


def _decoder_before(name: str, version: int, index: int) -> PgOutputDecoder:
    decoder = PgOutputDecoder(version)
    for raw in records(name)[:index]:
        decoder.decode(raw)
    return decoder


def test_samples_cover_every_kind() -> None:
    tags = {records(n)[i][0] for n, _, i in _samples()}
    assert tags == {t.value for t in MessageType}


@pytest.mark.parametrize(("name", "version", "index"), _samples())
def test_every_truncation_and_trailing_garbage_raise_decode_error(name: str, version: int, index: int) -> None:
    decoder = _decoder_before(name, version, index)
    raw = records(name)[index]
    for cut in range(len(raw)):
        with pytest.raises(DecodeError, match="cannot continue"):
            decoder.decode(raw[:cut])
    with pytest.raises(DecodeError, match="unexpected bytes"):
        decoder.decode(raw + b"\0")
    # A failed decode leaves the decoder's state (cache, stream block) untouched.
    assert decoder.decode(memoryview(raw)) == decoded(name, version)[index]


@pytest.mark.parametrize(("name", "version", "index"), _samples())
def test_corrupted_bytes_raise_only_decode_error(name: str, version: int, index: int) -> None:
    base = _decoder_before(name, version, index)
    raw = records(name)[index]
    rng = random.Random(index)
    for _ in range(300):
        corrupt = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        decoder = PgOutputDecoder(version)
        decoder.relations = dict(base.relations)
        decoder._in_stream = base._in_stream
        try:
            decoder.decode(bytes(corrupt))
        except DecodeError:
            pass


# -- hand-built edge cases -------------------------------------------------------


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def xid_part(xid: int | None) -> bytes:
    return b"" if xid is None else struct.pack(">I", xid)


def relation_msg(oid: int, columns: Sequence[tuple[str, int]], *, namespace: str = "public",
                 name: str = "t", xid: int | None = None) -> bytes:
    cols = b"".join(bytes([i == 0]) + cstr(c) + struct.pack(">Ii", t, -1) for i, (c, t) in enumerate(columns))
    return (b"R" + xid_part(xid) + struct.pack(">I", oid) + cstr(namespace) + cstr(name) + b"d"
            + struct.pack(">H", len(columns)) + cols)


def tuple_data(*values: str | bytes | None | object) -> bytes:
    out = struct.pack(">H", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED_TOAST:
            out += b"u"
        elif isinstance(v, str):
            out += b"t" + struct.pack(">I", len(v.encode())) + v.encode()
        elif isinstance(v, bytes):
            out += b"b" + struct.pack(">I", len(v)) + v
    return out


def insert_msg(oid: int, *values: str | bytes | None | object, xid: int | None = None) -> bytes:
    return b"I" + xid_part(xid) + struct.pack(">I", oid) + b"N" + tuple_data(*values)


def test_relation_resent_replaces_cache_entry() -> None:
    decoder = PgOutputDecoder()
    decoder.decode(relation_msg(7, [("id", INT4), ("a", TEXT)]))
    assert decoder.decode(insert_msg(7, "1", "x")) == Insert(decoder.relations[7], ("1", "x"))
    resent = decoder.decode(relation_msg(7, [("id", INT4), ("a", TEXT), ("b", INT2)]))
    insert = decoder.decode(insert_msg(7, "2", "y", "3"))
    assert isinstance(insert, Insert)
    assert insert.relation is resent is decoder.relations[7]
    assert [c.name for c in insert.relation.columns] == ["id", "a", "b"]
    with pytest.raises(DecodeError, match="2 columns but Relation public.t .oid 7. has 3"):
        decoder.decode(insert_msg(7, "3", "z"))


def test_binary_and_mixed_tuple_values() -> None:
    decoder = PgOutputDecoder()
    decoder.decode(relation_msg(1, [("a", INT4), ("b", BYTEA), ("c", TEXT), ("d", TEXT), ("e", BYTEA)]))
    msg = decoder.decode(insert_msg(1, b"\x00\x00\x00\x2a", b"", None, UNCHANGED_TOAST, "héllo"))
    assert isinstance(msg, Insert)
    assert msg.new == (b"\x00\x00\x00\x2a", b"", None, UNCHANGED_TOAST, "héllo")
    assert isinstance(msg.new[0], bytes) and isinstance(msg.new[4], str)


def test_stream_block_xids_and_cache_without_xid() -> None:
    decoder = PgOutputDecoder(2)
    assert decoder.decode(b"S" + struct.pack(">IB", 900, 1)) == StreamStart(900, True)
    relation = decoder.decode(relation_msg(5, [("id", INT4)], xid=901))
    assert isinstance(relation, Relation) and relation.xid == 901
    assert decoder.relations[5].xid is None
    assert decoder.decode(insert_msg(5, "1", xid=901)) == Insert(decoder.relations[5], ("1",), 901)
    assert decoder.decode(b"E") == StreamStop()
    assert decoder.decode(insert_msg(5, "2")) == Insert(decoder.relations[5], ("2",), None)
    abort = b"A" + struct.pack(">II", 900, 901)
    assert decoder.decode(abort) == StreamAbort(900, 901)
    commit = b"c" + struct.pack(">IBQQq", 900, 0, 0x10, 0x20, 0)
    assert decoder.decode(commit) == StreamCommit(900, 0, 0x10, 0x20, 946_684_800_000_000)


def test_stream_state_violations() -> None:
    decoder = PgOutputDecoder(2)
    with pytest.raises(DecodeError, match="Stream Stop without"):
        decoder.decode(b"E")
    decoder.decode(b"S" + struct.pack(">IB", 900, 1))
    with pytest.raises(DecodeError, match="inside a stream block"):
        decoder.decode(b"S" + struct.pack(">IB", 900, 0))
    with pytest.raises(DecodeError, match="inside a stream block"):
        decoder.decode(b"B" + struct.pack(">QqI", 1, 0, 900))


def test_timestamps_are_unix_epoch_microseconds() -> None:
    begin = PgOutputDecoder().decode(b"B" + struct.pack(">QqI", 0x16B3748, 0, 42))
    assert begin == Begin(0x16B3748, 946_684_800 * 1_000_000, 42)


def test_pg_catalog_namespace_is_sent_empty() -> None:
    decoder = PgOutputDecoder()
    typ = decoder.decode(b"Y" + struct.pack(">I", 16392) + cstr("") + cstr("int4"))
    assert typ == Type(16392, "pg_catalog", "int4")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty pgoutput message"),
        (b"Z\x00", "tag 'Z'"),
        (b"P" + bytes(40), "tag 'P'"),  # two-phase Prepare
        (b"S" + struct.pack(">IB", 1, 1), "needs protocol_version 2"),
        (insert_msg(999, "1"), "unknown relation oid 999"),
        (b"U" + struct.pack(">I", 999) + b"N" + tuple_data("1"), "unknown relation oid 999"),
        (b"D" + struct.pack(">I", 999) + b"K" + tuple_data("1"), "unknown relation oid 999"),
        (b"T" + struct.pack(">IBII", 2, 0, 1, 999), "unknown relation oid 999"),
        (b"T" + struct.pack(">IBI", 1000, 0, 1), "announces 1000 relations"),
        (b"I" + struct.pack(">I", 1) + b"X" + tuple_data("1"), "expected 'N'"),
        (b"U" + struct.pack(">I", 1) + b"X" + tuple_data("1"), "expected 'K', 'O' or 'N'"),
        (b"U" + struct.pack(">I", 1) + b"K" + tuple_data("1") + b"K" + tuple_data("1"), "got 'K'"),
        (b"D" + struct.pack(">I", 1) + b"N" + tuple_data("1"), "expected 'K' or 'O'"),
        (b"I" + struct.pack(">I", 1) + b"N\x00\x01x", "unknown tuple value kind 'x'"),
        (b"I" + struct.pack(">I", 1) + b"N\x00\x01t\xff\xff\xff\xff", "announces 4294967295 bytes"),
        (b"I" + struct.pack(">I", 1) + b"N\x00\x01t\x00\x00\x00\x02\xc3(", "invalid UTF-8"),
        (b"R" + struct.pack(">I", 3) + b"public\0t", "no terminating NUL"),
        (b"M\x01" + bytes(8) + cstr("p") + struct.pack(">I", 5) + b"abc", "announces 5 bytes"),
        (b"C" + bytes(10), "Commit message .'C', 11 bytes.: truncated"),
    ],
)
def test_malformed_messages(data: bytes, match: str) -> None:
    decoder = PgOutputDecoder()
    decoder.decode(relation_msg(1, [("id", INT4)]))
    with pytest.raises(DecodeError, match=match) as info:
        decoder.decode(data)
    assert "cannot continue" in str(info.value)


def test_unsupported_protocol_version() -> None:
    with pytest.raises(ConfigError, match="protocol_version 3"):
        PgOutputDecoder(3)
