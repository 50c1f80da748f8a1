"""The crash window between the Kafka commit and the standby status update is closed by offsets in Kafka."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import consume_all
from tests.waiting import wait_until

pytestmark = [pytest.mark.pg, pytest.mark.kafka]


def slot_confirmed(pg_db: Any) -> int:
    rows = pg_db.execute("SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'cdcd'")
    return int(rows[0][0])


def test_sigkill_after_kafka_commit_does_not_duplicate(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"eo{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.t"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    # A status update only every 10 minutes: PostgreSQL's confirmed position stays behind Kafka.
    args = ["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap, "--topic-prefix", prefix]
    env = {"CDCD_STATUS_INTERVAL_MS": "600000"}
    first = CdcdProcess(args, env=env)
    cdcd_procs.append(first)
    first.wait_for("streaming")
    confirmed_before = slot_confirmed(pg_db)
    for i in range(5):
        pg_db.execute(f"INSERT INTO t SELECT g FROM generate_series({i * 20 + 1}, {i * 20 + 20}) g")
    assert len(consume_all(kafka_broker.bootstrap, topic, expect=100, timeout=20)) == 100
    first.kill()
    assert slot_confirmed(pg_db) == confirmed_before, "precondition: PostgreSQL will resend everything"

    second = CdcdProcess(args, env=env)
    cdcd_procs.append(second)
    second.wait_for("offset_loaded")
    second.wait_for("streaming")
    pg_db.execute("INSERT INTO t VALUES (1000)")
    records = consume_all(kafka_broker.bootstrap, topic, expect=101, timeout=20, settle=2.0)
    ids = sorted(r.json()["payload"]["after"]["id"] for r in records)
    assert ids == list(range(1, 101)) + [1000], "each change exactly once across the crash"
    offsets = consume_all(kafka_broker.bootstrap, f"{prefix}.offsets", timeout=10, connect=False)
    assert offsets and all(r.key_json() == {"server": prefix, "slot": "cdcd"} for r in offsets)
    assert second.terminate() == 0
    wait_until(lambda: slot_confirmed(pg_db) > confirmed_before, "the slot confirmed past the crash")


def test_dropped_slot_with_offsets_in_kafka_is_an_error(pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    prefix = f"ds{uuid.uuid4().hex[:8]}"
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    args = ["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap, "--topic-prefix", prefix]
    proc = CdcdProcess(args)
    cdcd_procs.append(proc)
    proc.wait_for("streaming")
    pg_db.execute("INSERT INTO t VALUES (1)")
    consume_all(kafka_broker.bootstrap, f"{prefix}.public.t", expect=1, timeout=20)
    assert proc.terminate() == 0
    pg_db.execute("SELECT pg_drop_replication_slot('cdcd')")
    again = CdcdProcess(args)
    cdcd_procs.append(again)
    assert again.wait(60) == 3
    assert "does not exist, but Kafka holds events" in again.text()
    assert pg_db.execute("SELECT count(*) FROM pg_replication_slots")[0][0] == 0, "never silently re-created"
