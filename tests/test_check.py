"""``cdcd check`` in process: each line says what it saw, and FAIL only where ``run`` would fail."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest

from cdcd.check import CheckResult, report, run_checks
from cdcd.config import Config

pytestmark = [pytest.mark.pg]


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fresh_database_for_the_stdout_sink(pg_db: Any) -> None:
    pg_db.execute("CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE loose (v int)")
    results = by_name(run_checks(Config(dsn=pg_db.dsn, sink="stdout")))
    assert results["postgresql"].status == "ok"
    assert (results["wal_level"].status, results["wal_level"].detail) == ("ok", "logical")
    assert results["replication privilege"].status == "ok"
    assert results["publication"].status == "warn" and "run will create it" in results["publication"].detail
    identity = results["replica identity"]
    assert identity.status == "warn" and "public.loose" in identity.detail and "keyed" not in identity.detail
    assert results["slot"].status == "ok" and "does not exist yet" in results["slot"].detail
    assert results["sink"].status == "ok"
    assert "kafka" not in results
    out = io.StringIO()
    assert report(list(results.values()), out) is True
    assert "warn publication: cdcd does not exist" in out.getvalue()


def test_nothing_is_created_or_changed(pg_db: Any) -> None:
    before = pg_db.execute("SELECT (SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_replication_slots),"
                           " (SELECT count(*) FROM pg_event_trigger)")
    run_checks(Config(dsn=pg_db.dsn, sink="stdout"))
    after = pg_db.execute("SELECT (SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_replication_slots),"
                          " (SELECT count(*) FROM pg_event_trigger)")
    assert after == before


def test_failures_name_the_fix(pg_db: Any) -> None:
    pg_db.execute("SELECT pg_create_logical_replication_slot('decoder', 'test_decoding')")
    try:
        results = by_name(run_checks(Config(dsn=pg_db.dsn, sink="stdout", slot_name="decoder",
                                            publication_autocreate_mode="disabled")))
    finally:
        pg_db.execute("SELECT pg_drop_replication_slot('decoder')")
    assert results["slot"].status == "FAIL" and "uses plugin test_decoding" in results["slot"].detail
    assert results["publication"].status == "FAIL" and "CREATE PUBLICATION cdcd" in results["publication"].detail
    assert report(list(results.values()), io.StringIO()) is False


def test_existing_publication_and_slot(pg_db: Any) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION cdcd FOR TABLE t")
    pg_db.execute("SELECT pg_create_logical_replication_slot('cdcd', 'pgoutput')")
    try:
        results = by_name(run_checks(Config(dsn=pg_db.dsn, sink="stdout")))
    finally:
        pg_db.execute("SELECT pg_drop_replication_slot('cdcd')")
    assert results["publication"].status == "ok" and "public.t" in results["publication"].detail
    assert results["replica identity"].status == "ok"
    assert results["slot"].status == "ok" and "cdcd exists, inactive" in results["slot"].detail


def test_unreachable_postgresql_and_broker() -> None:
    port = closed_port()
    results = run_checks(Config(dsn=f"host=127.0.0.1 port={port} dbname=x user=x connect_timeout=2",
                                bootstrap_servers=f"127.0.0.1:{closed_port()}"))
    found = by_name(results)
    assert found["postgresql"].status == "FAIL"
    assert found["kafka"].status == "FAIL" and "unreachable" in found["kafka"].detail
    assert "offsets topic" not in found, "no topic check without a broker"
    assert report(results, io.StringIO()) is False


@pytest.mark.kafka
def test_reachable_broker(pg_db: Any, kafka_broker: Any) -> None:
    results = by_name(run_checks(Config(dsn=pg_db.dsn, bootstrap_servers=kafka_broker.bootstrap)))
    assert results["kafka"].status == "ok" and "broker(s)" in results["kafka"].detail
    assert results["offsets topic"].status in ("ok", "warn")
    assert results["value.converter"].status == "ok" and results["value.converter"].detail == "JsonConverter"
