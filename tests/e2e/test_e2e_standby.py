"""Logical decoding on a hot standby (PostgreSQL 16): a primary and a streaming standby,
both started by the test, cdcd pointed at the standby.

Every change is counted by id: each must reach Kafka exactly once, across a restart of
the primary, a promotion of the standby and a restart of cdcd on the promoted server,
and when the standby is re-pointed at another standby promoted to primary.
The promotion is a planned switchover (the standby replayed everything, the primary is
stopped, then promoted), so no Kafka transaction is open when it happens and strict
exactly-once holds even on the embedded mock broker, whose read_committed consumers
would otherwise see aborted transactions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import Record, consume_all
from tests.fix_pg import PgCluster, StandbyPair, start_standby
from tests.waiting import wait_until

pytestmark = [pytest.mark.pg, pytest.mark.kafka]

DB = "shop"


def setup_source(pair: StandbyPair, snapshot_rows: int = 0) -> None:
    pair.primary.execute(f"CREATE DATABASE {DB}")
    pair.primary.execute("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION cdcd FOR TABLE t",
                         dbname=DB)
    if snapshot_rows:
        pair.primary.execute("INSERT INTO t SELECT g, 'snapshot' FROM generate_series(1, %s::int) g",
                             (snapshot_rows,), dbname=DB)
    pair.wait_replayed()


def insert(cluster: PgCluster, first: int, last: int, per_txn: int = 10) -> None:
    with cluster.connect(DB) as conn:
        for start in range(first, last + 1, per_txn):
            conn.execute("INSERT INTO t SELECT g, 'change' FROM generate_series(%s::int, %s::int) g",
                         (start, min(start + per_txn - 1, last)))


def run_cdcd(procs: list[CdcdProcess], dsn: str, bootstrap: str, prefix: str, **env: str) -> CdcdProcess:
    proc = CdcdProcess(["run", "--dsn", dsn, "--bootstrap-servers", bootstrap, "--topic-prefix", prefix],
                       env={"CDCD_STATUS_INTERVAL_MS": "200", **env})
    procs.append(proc)
    return proc


def ids(records: list[Record]) -> Counter[int]:
    return Counter(r.json()["payload"]["after"]["id"] for r in records if r.value is not None)


def slots(cluster: PgCluster) -> list[tuple[Any, ...]]:
    return cluster.execute("SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'logical'")


def test_standby_decoding_exactly_once_across_primary_restart_and_promotion(
        pg_standby_pair: StandbyPair, kafka_broker: Any, cdcd_procs: list) -> None:
    pair = pg_standby_pair
    primary, standby = pair.primary, pair.standby
    prefix = f"sb{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.t"
    setup_source(pair, snapshot_rows=50)

    # The slot and the snapshot come from the standby; primary.dsn lets slot creation ask
    # the primary for the running-transactions record it waits for.
    cdcd = run_cdcd(cdcd_procs, standby.dsn(DB), kafka_broker.bootstrap, prefix,
                    CDCD_PRIMARY_DSN=primary.dsn(DB))
    cdcd.wait_for("streaming", timeout=60)
    assert slots(standby) == [("cdcd", True)] and slots(primary) == [], "the slot lives on the standby"
    snapshot = consume_all(kafka_broker.bootstrap, topic, expect=50, timeout=30)
    assert {r.json()["payload"]["op"] for r in snapshot} == {"r"}
    assert {r.json()["payload"]["source"]["txId"] for r in snapshot} == {0}, "no xid on a standby (as Debezium)"

    insert(primary, 51, 100)
    assert len(consume_all(kafka_broker.bootstrap, topic, expect=100, timeout=30)) >= 100

    primary.restart()  # the standby reconnects to it; cdcd's session on the standby is not affected
    insert(primary, 101, 150)
    assert len(consume_all(kafka_broker.bootstrap, topic, expect=150, timeout=30)) >= 150

    pair.wait_replayed()  # a planned switchover: everything committed reached the standby
    primary.stop()
    pair.promote()
    insert(standby, 151, 200)  # the promoted standby is the primary now
    assert len(consume_all(kafka_broker.bootstrap, topic, expect=200, timeout=30)) >= 200
    interrupted = [e for e in cdcd.logs() if e.get("event") in ("stream_interrupted", "fatal")]
    assert interrupted == [], "the primary's restart and the promotion did not interrupt the session"
    assert cdcd.terminate() == 0

    insert(standby, 201, 250)  # while cdcd is down
    again = run_cdcd(cdcd_procs, standby.dsn(DB), kafka_broker.bootstrap, prefix)
    again.wait_for("streaming", timeout=60)
    records = consume_all(kafka_broker.bootstrap, topic, expect=250, timeout=30, settle=2.0)
    counts = ids(records)
    assert sorted(counts) == list(range(1, 251)), "nothing lost"
    assert [i for i, n in counts.items() if n > 1] == [], "nothing duplicated"
    assert again.terminate() == 0
    confirmed = standby.execute("SELECT confirmed_flush_lsn >= pg_current_wal_lsn() - 16384 "
                                "FROM pg_replication_slots WHERE slot_name = 'cdcd'")
    assert confirmed == [(True,)], "the slot's position was kept and advanced on the promoted server"


def test_standby_follows_a_new_primary(pg_standby_pair: StandbyPair, kafka_broker: Any,
                                      cdcd_procs: list) -> None:
    """The primary fails over to another standby; cdcd's standby is re-pointed at it and goes on."""
    pair = pg_standby_pair
    prefix = f"sf{uuid.uuid4().hex[:8]}"
    setup_source(pair, snapshot_rows=20)
    new_primary = StandbyPair(pair.primary, start_standby(pair.primary))
    try:
        cdcd = run_cdcd(cdcd_procs, pair.standby.dsn(DB), kafka_broker.bootstrap, prefix,
                        CDCD_PRIMARY_DSN=pair.primary.dsn(DB))
        cdcd.wait_for("streaming", timeout=60)
        insert(pair.primary, 21, 60)
        topic = f"{prefix}.public.t"
        assert len(consume_all(kafka_broker.bootstrap, topic, expect=60, timeout=30)) >= 60
        new_primary.wait_replayed()
        pair.wait_replayed()
        pair.primary.stop()
        new_primary.promote()
        conninfo = new_primary.standby.dsn(application_name="cdcd_test_standby")
        pair.standby.execute(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(conninfo)))
        pair.standby.execute("SELECT pg_reload_conf()")
        insert(new_primary.standby, 61, 100)
        records = consume_all(kafka_broker.bootstrap, topic, expect=100, timeout=60, settle=2.0)
        assert [e for e in cdcd.logs() if e.get("event") == "stream_interrupted"] == []
        counts = ids(records)
        assert sorted(counts) == list(range(1, 101)), "nothing lost"
        assert [i for i, n in counts.items() if n > 1] == [], "nothing duplicated"
        timeline = pair.standby.execute("SELECT received_tli FROM pg_stat_wal_receiver")
        assert timeline == [(2,)], "the standby follows the new primary's timeline"
        assert cdcd.terminate() == 0
    finally:
        new_primary.standby.destroy()


def test_slot_creation_on_a_standby_waits_for_the_primary_and_obeys_sigterm(
        pg_standby_pair: StandbyPair, kafka_broker: Any, cdcd_procs: list) -> None:
    pair = pg_standby_pair
    prefix = f"sw{uuid.uuid4().hex[:8]}"
    setup_source(pair)
    # A transaction with an xid open on the primary: the slot cannot become consistent
    # before it ends, however many running-transactions records the primary logs.
    blocker = psycopg.connect(pair.primary.dsn(DB))
    try:
        blocker.execute("INSERT INTO t VALUES (1, 'in flight')")
        waiting = run_cdcd(cdcd_procs, pair.standby.dsn(DB), kafka_broker.bootstrap, prefix,
                           CDCD_PRIMARY_DSN=pair.primary.dsn(DB))
        line = waiting.wait_for("slot_creation_waiting", timeout=60)
        assert "pg_log_standby_snapshot() on the primary" in line["waiting_for"]
        assert waiting.terminate() == 0, "SIGTERM ends the wait"
        # PostgreSQL 16.2's walsender ignores cancel and terminate while it waits for a
        # transaction on a standby: its half-made slot goes once that transaction ends.
        blocker.commit()
        wait_until(lambda: slots(pair.standby) == [], "the abandoned creation left its slot behind")

        blocker.execute("INSERT INTO t VALUES (2, 'in flight')")
        unaided = run_cdcd(cdcd_procs, pair.standby.dsn(DB), kafka_broker.bootstrap, prefix)
        line = unaided.wait_for("slot_creation_waiting", timeout=60)
        assert "set primary.dsn" in line["waiting_for"]
        blocker.commit()
        # Without primary.dsn the operator's call on the primary ends the wait.
        pair.primary.execute("SELECT pg_log_standby_snapshot()")
        unaided.wait_for("streaming", timeout=60)
    finally:
        blocker.close()
    insert(pair.primary, 3, 20)
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=20, timeout=30, settle=1.0)
    assert sorted(ids(records).elements()) == list(range(1, 21))
    assert unaided.terminate() == 0


def exit_code(proc: CdcdProcess, timeout: float = 60.0) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"cdcd did not exit within {timeout} s:\n{proc.text()}") from None


@pytest.mark.standby_settings(hot_standby_feedback="off")  # the primary may vacuum rows the slot needs
def test_slot_invalidated_by_a_conflict_on_the_standby_exits_3(
        pg_standby_pair: StandbyPair, kafka_broker: Any, cdcd_procs: list) -> None:
    pair = pg_standby_pair
    prefix = f"sc{uuid.uuid4().hex[:8]}"
    setup_source(pair)
    cdcd = run_cdcd(cdcd_procs, pair.standby.dsn(DB), kafka_broker.bootstrap, prefix,
                    CDCD_PRIMARY_DSN=pair.primary.dsn(DB))
    cdcd.wait_for("standby_setting", timeout=60, setting="hot_standby_feedback")
    cdcd.wait_for("streaming", timeout=60)
    insert(pair.primary, 1, 10)
    consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=10, timeout=30)
    # The primary removes catalog rows newer than the slot's catalog_xmin (which moves only
    # at running-transactions records); replaying that on the standby conflicts with the
    # slot while cdcd streams from it.
    pair.primary.execute("CREATE TABLE doomed (x int)", dbname=DB)
    pair.primary.execute("DROP TABLE doomed", dbname=DB)  # another xid: the dead row's xmax is new
    pair.primary.execute("VACUUM pg_class", dbname=DB)
    pair.wait_replayed()
    assert exit_code(cdcd) == 3, cdcd.text()
    assert "must be invalidated. (the slot was invalidated by a conflict with recovery" in cdcd.text()
    assert "Traceback" not in cdcd.text()
    assert pair.standby.execute("SELECT conflicting FROM pg_replication_slots") == [(True,)]
    # Started again, cdcd finds the slot invalidated before streaming.
    cdcd = run_cdcd(cdcd_procs, pair.standby.dsn(DB), kafka_broker.bootstrap, prefix)
    assert exit_code(cdcd) == 3, cdcd.text()
    assert "was invalidated because of a conflict with recovery" in cdcd.text()
    assert "Traceback" not in cdcd.text()
    check = subprocess.run([sys.executable, "-m", "cdcd", "check", "--dsn", pair.standby.dsn(DB),
                            "--sink", "stdout"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert any(line.startswith("FAIL slot: replication slot 'cdcd' was invalidated because of a conflict")
               for line in lines), check.stdout
    assert any(line.startswith("FAIL hot_standby_feedback: off") for line in lines), check.stdout


def cdcd_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdcd", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CDCD_HTTP_PORT": "0", **env})


def test_check_says_what_the_standby_needs_and_run_refuses_what_cannot_work(
        pg_standby_pair: StandbyPair) -> None:
    pair = pg_standby_pair
    pair.primary.execute(f"CREATE DATABASE {DB}")
    pair.primary.execute("CREATE TABLE t (id int PRIMARY KEY)", dbname=DB)
    pair.wait_replayed()
    dsn = pair.standby.dsn(DB)
    no_publication = cdcd_cli("run", "--dsn", dsn, "--sink", "stdout")
    assert no_publication.returncode == 3, no_publication.stderr
    assert "this server is a standby where nothing can be created" in no_publication.stderr
    check = cdcd_cli("check", "--dsn", dsn, "--sink", "stdout", CDCD_PRIMARY_DSN=pair.primary.dsn(DB))
    statuses = {" ".join(line.split(":", 1)[0].split()) for line in check.stdout.splitlines()}
    assert {"ok standby", "ok hot_standby_feedback", "ok primary wal_level", "warn primary_slot_name",
            "FAIL publication"} <= statuses, check.stdout
    assert check.returncode == 1

    pair.primary.execute("CREATE PUBLICATION cdcd FOR ALL TABLES", dbname=DB)
    pair.wait_replayed()
    unaided = cdcd_cli("check", "--dsn", dsn, "--sink", "stdout")
    assert unaided.returncode == 0, unaided.stdout
    assert "warn primary.dsn: not set" in unaided.stdout and "warn primary wal_level: not visible" in unaided.stdout
    signals = cdcd_cli("run", "--dsn", dsn, "--sink", "stdout", CDCD_SIGNAL_DATA_COLLECTION="public.signals")
    assert signals.returncode == 3 and "incremental snapshots write watermark rows" in signals.stderr
    assert pair.standby.execute("SELECT count(*) FROM pg_replication_slots")[0][0] == 0
