"""snapshot.mode against a real PostgreSQL: consistent with the stream, restartable, Debezium's flags."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import consume_all
from tests.waiting import wait_until

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


def start(procs: list[CdcdProcess], pg_db: Any, bootstrap: str, prefix: str,
          env: dict[str, str] | None = None, wait: str = "streaming") -> CdcdProcess:
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", bootstrap, "--topic-prefix", prefix],
                       env=env)
    procs.append(proc)
    proc.wait_for(wait, timeout=60)
    return proc


def test_initial_snapshot_then_stream_without_gap_or_overlap(pg_db: Any, kafka_broker: Any,
                                                             cdcd_procs: list) -> None:
    prefix = f"sn{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (k1 int, k2 int, PRIMARY KEY (k1, k2))")
    pg_db.execute("INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 3000) g")
    pg_db.execute("INSERT INTO b VALUES (1, 1), (1, 2)")
    stop_writing = threading.Event()
    written: list[int] = []

    def writer() -> None:  # commits while the slot is created and the snapshot is read
        with pg_db.connect() as conn:
            i = 10_000
            while not stop_writing.is_set():
                conn.execute("INSERT INTO a VALUES (%s, 'live')", (i,))
                written.append(i)
                i += 1
                time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        proc = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix,
                     env={"CDCD_SNAPSHOT_FETCH_SIZE": "500", "CDCD_MAX_BATCH_EVENTS": "700"})
        first_streamed = len(written)  # writes went on while the slot was created and the snapshot read
        wait_until(lambda: len(written) >= first_streamed + 20, "writes while streaming")
    finally:
        stop_writing.set()
        thread.join()
    expected_ids = set(range(1, 3001)) | set(written)
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.a", expect=len(expected_ids), timeout=60,
                          settle=2.0)
    seen = [r.json()["payload"]["after"]["id"] for r in records]
    assert sorted(seen) == sorted(expected_ids), "every row exactly once: the snapshot and the stream meet exactly"
    ops = {r.json()["payload"]["after"]["id"]: r.json()["payload"]["op"] for r in records}
    assert all(ops[i] == "r" for i in range(1, 3001))
    snapshot_written = [i for i in written if ops[i] == "r"]
    assert all(ops[i] == "c" for i in written if i not in snapshot_written)

    b = consume_all(kafka_broker.bootstrap, f"{prefix}.public.b", expect=2, timeout=20)
    flags = sorted(r.json()["payload"]["source"]["snapshot"] for r in records + b if r.json()["payload"]["op"] == "r")
    assert flags.count("first") == 1 and flags.count("last") == 1
    src = b[0].json()["payload"]["source"]
    assert src["sequence"] == f'[null,"{src["lsn"]}"]' and b[0].json()["payload"]["transaction"] is None
    proc.wait_for("snapshot_completed")


def test_interrupted_snapshot_is_taken_again(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"si{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE big (id int PRIMARY KEY)")
    # Small Kafka transactions keep the snapshot busy long enough to be killed midway. The row
    # count stays low because the embedded broker keeps only ~5 MB per partition and drops the
    # oldest records beyond that (its low watermark moves), which would look like a gap.
    pg_db.execute("INSERT INTO big SELECT generate_series(1, 3000)")
    env = {"CDCD_SNAPSHOT_FETCH_SIZE": "100", "CDCD_MAX_BATCH_EVENTS": "20"}
    first = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env=env, wait="snapshot_progress")
    first.kill()
    assert "snapshot_completed" not in first.text()
    second = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env=env)
    second.wait_for("snapshot_completed", timeout=60)
    pg_db.execute("INSERT INTO big VALUES (50000)")  # streamed after the snapshot: once it is in, all is
    ids: set[int] = set()

    def streamed_row_arrived() -> bool:
        records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.big", timeout=30)
        ids.update(r.json()["payload"]["after"]["id"] for r in records)
        return 50000 in ids

    wait_until(streamed_row_arrived, "the row inserted after the snapshot", timeout=120)
    assert ids == set(range(1, 3001)) | {50000}, "no gap after an interrupted snapshot (r events may repeat)"
    assert "snapshot_restarting" in second.text()


def test_initial_only_stops_after_the_snapshot(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"so{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pg_db.execute("INSERT INTO t SELECT generate_series(1, 10)")
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap,
                        "--topic-prefix", prefix], env={"CDCD_SNAPSHOT_MODE": "initial_only"})
    cdcd_procs.append(proc)
    assert proc.wait(60) == 0
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=10, timeout=20)
    assert sorted(r.json()["payload"]["after"]["id"] for r in records) == list(range(1, 11))
    assert pg_db.execute("SELECT count(*) FROM pg_replication_slots")[0][0] == 0, "initial_only creates no slot"


def test_no_data_streams_only(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"sd{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pg_db.execute("INSERT INTO t VALUES (1)")
    start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env={"CDCD_SNAPSHOT_MODE": "never"})
    pg_db.execute("INSERT INTO t VALUES (2)")
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=1, timeout=20, settle=1.5)
    assert [(r.json()["payload"]["op"], r.json()["payload"]["after"]["id"]) for r in records] == [("c", 2)]


def test_when_needed_snapshots_again_when_the_slot_is_gone(pg_db: Any, kafka_broker: Any,
                                                           cdcd_procs: list) -> None:
    prefix = f"sw{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    env = {"CDCD_SNAPSHOT_MODE": "when_needed"}
    proc = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env=env)
    pg_db.execute("INSERT INTO t VALUES (1)")
    consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=1, timeout=20)
    assert proc.terminate() == 0
    pg_db.execute("SELECT pg_drop_replication_slot('cdcd')")
    pg_db.execute("INSERT INTO t VALUES (2)")  # lost to the stream: only a new snapshot has it
    again = start(cdcd_procs, pg_db, kafka_broker.bootstrap, prefix, env=env)
    again.wait_for("snapshot_completed")
    records = consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=3, timeout=20, settle=1.5)
    assert sorted((r.json()["payload"]["op"], r.json()["payload"]["after"]["id"]) for r in records) == [
        ("c", 1), ("r", 1), ("r", 2)]
