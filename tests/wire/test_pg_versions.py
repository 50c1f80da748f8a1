"""What differs between server versions, checked on every version the suite runs on.

* pgoutput ``proto_version`` 1 to 4: cdcd requests 1 everywhere (``cdcd.wire.standby.PROTOCOL_VERSION``);
  each higher version the server accepts yields the same bytes when its opt-in options
  (streaming, two_phase) are not given, and a version above the server's maximum is refused;
* ``pg_replication_slots``: the columns cdcd reads exist on each version and mean the same;
* the role checks: a PostgreSQL 15 standby cannot decode (``cdcd check`` FAIL, ``run`` exit 3).
"""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest

from cdcd.wire.replication import ReplicationConnection
from cdcd.wire.standby import (
    PROTOCOL_VERSION,
    STANDBY_DECODING_VERSION,
    Finding,
    ServerRole,
    SlotCreationStopped,
    SlotCreationWait,
    invalidation_message,
    max_protocol_version,
    slot_state_columns,
    standby_findings,
)
from tests.fix_pg import PgCluster, PgDatabase, StandbyPair, start_standby

# -- pgoutput protocol versions ------------------------------------------------------------------


def _changes(pg_db: PgDatabase, slot: str, version: int) -> list[bytes]:
    rows = pg_db.execute(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, 'proto_version', %s, "
        "'publication_names', 'p', 'messages', 'true')", (slot, str(version)))
    return [bytes(r[0]) for r in rows]


def test_protocol_versions_give_the_same_messages_without_their_options(pg_db: PgDatabase) -> None:
    server = int(pg_db.execute("SHOW server_version_num")[0][0])
    highest = max_protocol_version(server)
    assert highest == {15: 3, 16: 4}[server // 10000]
    assert PROTOCOL_VERSION <= highest
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t")
    pg_db.execute("SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
    with pg_db.connect() as conn:
        with conn.transaction():
            conn.execute("INSERT INTO t SELECT g, repeat('x', g) FROM generate_series(1, 50) g")
            conn.execute("UPDATE t SET v = 'changed' WHERE id % 7 = 0")
            conn.execute("SELECT pg_logical_emit_message(true, 'test', 'hello')")
    pg_db.execute("DELETE FROM t WHERE id > 40")
    baseline = _changes(pg_db, "s", PROTOCOL_VERSION)
    assert len(baseline) > 60 and baseline[0][:1] == b"B"
    for version in range(PROTOCOL_VERSION + 1, highest + 1):
        assert _changes(pg_db, "s", version) == baseline, f"proto_version {version} differs from 1"
    with pytest.raises(psycopg.errors.FeatureNotSupported, match=f"supports? protocol {highest} or lower"):
        _changes(pg_db, "s", highest + 1)


def test_cdcd_decodes_what_each_server_sends(pg_db: PgDatabase) -> None:
    """The version cdcd requests over the walsender, decoded by cdcd's own decoder."""
    from cdcd.decode.pgoutput import PgOutputDecoder
    from cdcd.wire.frames import XLogData

    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t")
    repl = ReplicationConnection(pg_db.dsn)
    try:
        point, _ = repl.create_slot("v", on_wait=lambda _s: None)
        pg_db.execute("INSERT INTO t VALUES (1), (2)")
        repl.start("v", point, ["p"], proto_version=PROTOCOL_VERSION)
        decoder = PgOutputDecoder(PROTOCOL_VERSION)
        kinds: list[str] = []
        while "Commit" not in kinds:
            frame = repl.read(5.0)
            assert frame is not None, f"no Commit after {kinds}"
            if isinstance(frame, XLogData):
                kinds.append(type(decoder.decode(frame.payload)).__name__)
        assert kinds == ["Begin", "Relation", "Insert", "Insert", "Commit"]
    finally:
        repl.close()


# -- pg_replication_slots ----------------------------------------------------------------------------


def test_slot_state_columns_on_this_version(pg_db: PgDatabase) -> None:
    pg_db.execute("CREATE PUBLICATION p FOR ALL TABLES")
    pg_db.execute("SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
    repl = ReplicationConnection(pg_db.dsn)
    try:
        info = repl.slot_info("s")
        assert repl.slot_info("missing") is None
    finally:
        repl.close()
    assert info is not None and info.plugin == "pgoutput" and not info.active
    assert info.wal_status == "reserved" and info.invalidation is None
    assert info.failover is None and info.synced is None  # PostgreSQL 17 columns
    server = int(pg_db.execute("SHOW server_version_num")[0][0])
    rows = pg_db.execute(f"SELECT {slot_state_columns(server)} FROM pg_replication_slots")
    assert rows == [("reserved", None, None, None)]
    has_conflicting = pg_db.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pg_replication_slots'::regclass "
        "AND attname = 'conflicting'")[0][0] == 1
    assert has_conflicting == (server >= STANDBY_DECODING_VERSION)


def test_slot_state_columns_for_every_version() -> None:
    assert "conflicting" not in slot_state_columns(150006)
    assert "conflicting" in slot_state_columns(160002)
    assert slot_state_columns(170000).startswith("wal_status, invalidation_reason, failover, synced")
    assert [max_protocol_version(v) for v in (130000, 140000, 150000, 160000, 170000)] == [1, 2, 3, 4, 4]


def test_invalidation_messages_name_the_cause_and_the_recovery() -> None:
    for reason, words in [("wal_removed", "max_slot_wal_keep_size"), ("rows_removed", "hot_standby_feedback"),
                          ("conflict", "conflict with recovery"), ("wal_level_insufficient", "wal_level"),
                          ("something_new", "invalidation_reason something_new")]:
        message = invalidation_message("cdcd", reason)
        assert words in message and "pg_drop_replication_slot" in message and "re-snapshot" in message


# -- roles -------------------------------------------------------------------------------------------

PRIMARY = ServerRole(160002, in_recovery=False, hot_standby_feedback=False, primary_slot_name="")
GOOD_STANDBY = ServerRole(160002, in_recovery=True, hot_standby_feedback=True, primary_slot_name="phys")


def _statuses(findings: list[Finding]) -> dict[str, str]:
    return {f.name: f.status for f in findings}


def test_standby_findings() -> None:
    assert standby_findings(PRIMARY, None, primary_dsn_given=False, signal_table=True) == []
    assert _statuses(standby_findings(GOOD_STANDBY, "logical", primary_dsn_given=True, signal_table=False)) == {
        "standby": "ok", "hot_standby_feedback": "ok", "primary wal_level": "ok"}
    bad = ServerRole(160002, in_recovery=True, hot_standby_feedback=False, primary_slot_name="")
    assert _statuses(standby_findings(bad, "replica", primary_dsn_given=True, signal_table=True)) == {
        "standby": "ok", "hot_standby_feedback": "FAIL", "primary_slot_name": "warn", "primary wal_level": "FAIL",
        "signal table": "FAIL"}
    unknown = _statuses(standby_findings(GOOD_STANDBY, None, primary_dsn_given=False, signal_table=False))
    assert unknown == {"standby": "ok", "hot_standby_feedback": "ok", "primary wal_level": "warn",
                       "primary.dsn": "warn"}
    old = ServerRole(150006, in_recovery=True, hot_standby_feedback=True, primary_slot_name="phys")
    (finding,) = standby_findings(old, "logical", primary_dsn_given=True, signal_table=False)
    assert finding.status == "FAIL" and "PostgreSQL 16 or later" in finding.detail


class _FakeConn:
    def __init__(self, calls: list[str], fail: bool = False) -> None:
        self.calls, self.fail, self.closed = calls, fail, False

    def execute(self, query: str) -> None:
        if self.fail:
            raise psycopg.OperationalError("connection refused")
        self.calls.append(query)

    def close(self) -> None:
        self.closed = True


def test_slot_creation_wait_asks_the_primary_and_stops() -> None:
    calls: list[str] = []
    stop = threading.Event()
    wait = SlotCreationWait("s", True, "host=primary", stop, connect=lambda dsn: _FakeConn(calls))  # type: ignore[arg-type,return-value]
    wait(1.0)
    wait(2.0)
    assert calls == ["SELECT pg_log_standby_snapshot()"] * 2 and wait.nudges == 2
    assert "pg_log_standby_snapshot() on the primary (2 so far)" in wait.reason()
    stop.set()
    with pytest.raises(SlotCreationStopped):
        wait(3.0)
    on_primary = SlotCreationWait("s", False, "host=primary", threading.Event(),
                                  connect=lambda dsn: _FakeConn(calls))  # type: ignore[arg-type,return-value]
    on_primary(1.0)
    assert wait.nudges == 2 and len(calls) == 2, "a primary needs no running-xacts request"
    assert "pg_stat_activity" in on_primary.reason()
    unaided = SlotCreationWait("s", True, "", threading.Event())
    unaided(10.0)
    assert "set primary.dsn" in unaided.reason()
    failing = SlotCreationWait("s", True, "host=gone", threading.Event(),
                               connect=lambda dsn: _FakeConn(calls, fail=True))  # type: ignore[arg-type,return-value]
    failing(1.0)  # logged, not raised: the wait goes on
    assert failing.nudges == 0


def test_postgresql_15_standby_cannot_decode(pg_cluster: PgCluster) -> None:
    if pg_cluster.version >= 16:
        pytest.skip("decoding on a standby is supported from PostgreSQL 16 (tests/e2e/test_e2e_standby.py)")
    standby = start_standby(pg_cluster)
    try:
        StandbyPair(pg_cluster, standby).wait_replayed()
        dsn = standby.dsn()
        check = subprocess.run([sys.executable, "-m", "cdcd", "check", "--dsn", dsn, "--sink", "stdout"],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 1
        assert "FAIL standby: this server is a standby running PostgreSQL 15" in check.stdout, check.stdout
        run = subprocess.run([sys.executable, "-m", "cdcd", "run", "--dsn", dsn, "--sink", "stdout"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 3, run.stderr
        assert "needs PostgreSQL 16 or later" in run.stderr and "Traceback" not in run.stderr
    finally:
        standby.destroy()

