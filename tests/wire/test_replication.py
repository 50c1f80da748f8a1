"""ReplicationConnection against a throwaway cluster: identify, slots, streaming, status, errors."""

from __future__ import annotations

import time

import pytest

from cdcd.decode.messages import Commit, Insert
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.errors import SourceUnavailable
from cdcd.wire.frames import Keepalive, XLogData
from cdcd.wire.replication import ReplicationCommandError, ReplicationConnection
from tests.fix_pg import PgDatabase
from tests.waiting import wait_until

pytestmark = pytest.mark.pg


def slot_row(pg_db: PgDatabase, slot: str) -> tuple[bool, str | None]:
    rows = pg_db.execute("SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                         (slot,))
    return rows[0] if rows else (False, None)


def lsn_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def test_identify_system_names_the_cluster_and_database(pg_db: PgDatabase) -> None:
    repl = ReplicationConnection(pg_db.dsn)
    try:
        identity = repl.identify_system()
    finally:
        repl.close()
    ((system_id,),) = pg_db.execute("SELECT system_identifier::text FROM pg_control_system()")
    assert identity.system_id == system_id
    assert identity.dbname == pg_db.dbname
    assert identity.xlogpos > 0 and identity.timeline == 1


def test_a_slot_from_creation_to_drop(pg_db: PgDatabase) -> None:
    repl = ReplicationConnection(pg_db.dsn)
    try:
        assert repl.slot_info("s") is None
        point, snapshot = repl.create_slot("s")
        assert point > 0 and snapshot is None
        info = repl.slot_info("s")
        assert info is not None and info.plugin == "pgoutput" and not info.active
        assert info.confirmed_flush_lsn == point and info.invalidation is None
        repl.drop_slot("s")
        assert repl.slot_info("s") is None
    finally:
        repl.close()


def test_stream_a_transaction_and_confirm_it(pg_db: PgDatabase) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t")
    setup = ReplicationConnection(pg_db.dsn)
    point, _ = setup.create_slot("s")
    setup.close()
    pg_db.execute("INSERT INTO t VALUES (1, 'one')")
    repl = ReplicationConnection(pg_db.dsn)
    try:
        repl.start("s", point, ["p"])
        assert slot_row(pg_db, "s")[0], "streaming makes the slot active"
        decoder = PgOutputDecoder()
        messages: list[object] = []
        deadline = time.monotonic() + 30
        while not any(isinstance(m, Commit) for m in messages):
            assert time.monotonic() < deadline, "no Commit streamed"
            frame = repl.read(1.0)
            if isinstance(frame, XLogData):
                messages.append(decoder.decode(frame.payload))
            else:
                assert frame is None or isinstance(frame, Keepalive)
        inserts = [m for m in messages if isinstance(m, Insert)]
        assert [m.new for m in inserts] == [("1", "one")]
        commit = next(m for m in messages if isinstance(m, Commit))
        repl.send_status(commit.end_lsn, commit.end_lsn)
        wait_until(lambda: lsn_int(slot_row(pg_db, "s")[1] or "0/0") >= commit.end_lsn, "the flush confirmed")

        second = ReplicationConnection(pg_db.dsn)
        try:
            with pytest.raises(ReplicationCommandError) as active:
                second.start("s", point, ["p"])
            assert "is active for pid" in active.value.server_message.lower()
        finally:
            second.close()

        pg_db.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 's'")
        with pytest.raises(SourceUnavailable):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                repl.read(1.0)
    finally:
        repl.close()
    wait_until(lambda: not slot_row(pg_db, "s")[0], "the slot released")


def test_a_missing_publication_fails_at_the_first_change(pg_db: PgDatabase) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    repl = ReplicationConnection(pg_db.dsn)
    try:
        point, _ = repl.create_slot("s")
        pg_db.execute("INSERT INTO t VALUES (1)")
        repl.start("s", point, ["missing"])
        with pytest.raises(ReplicationCommandError, match='publication "missing" does not exist'):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                repl.read(1.0)
    finally:
        repl.close()
