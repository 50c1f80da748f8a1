"""Metrics: private registries, cached hot-path children, the slot lag poller."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from cdcd import native
from cdcd.ops.metrics import SLOT_QUERY, Metrics, SlotLagPoller


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()  # a second registration in one registry would raise
    a.events_counter("public.t", "c").inc()
    assert value(a, "cdcd_events_total", table="public.t", op="c") == 1
    assert value(b, "cdcd_events_total", table="public.t", op="c") is None


def test_events_counter_is_cached_per_label_pair() -> None:
    m = Metrics(process_metrics=False)
    child = m.events_counter("public.t", "c")
    assert m.events_counter("public.t", "c") is child
    assert m.events_counter("public.t", "u") is not child
    for _ in range(3):
        child.inc()
    m.events_counter("public.t", "u").inc()
    assert value(m, "cdcd_events_total", table="public.t", op="c") == 3
    assert value(m, "cdcd_events_total", table="public.t", op="u") == 1


def test_build_info_and_initial_values() -> None:
    m = Metrics(version="9.9.9")
    assert value(m, "cdcd_build_info", version="9.9.9", core=native.CORE) == 1
    assert value(m, "cdcd_connected", peer="postgresql") == 0
    assert value(m, "cdcd_connected", peer="kafka") == 0
    assert value(m, "cdcd_kafka_transactions_total", outcome="aborted") == 0
    assert math.isnan(value(m, "cdcd_slot_lag_bytes") or 0.0)
    assert math.isnan(value(m, "cdcd_last_event_age_seconds") or 0.0)
    assert value(m, "process_resident_memory_bytes") is not None


def test_transaction_sets_behind_source_and_age() -> None:
    m = Metrics(process_metrics=False)
    now = time.time()
    m.transaction_processed(int((now - 2.5) * 1e6), now=now)
    assert value(m, "cdcd_transactions_total") == 1
    assert value(m, "cdcd_milliseconds_behind_source") == pytest.approx(2500, abs=1)
    assert value(m, "cdcd_last_event_age_seconds") == pytest.approx(2.5, abs=0.5)
    m.transaction_processed(int((now + 60) * 1e6), now=now)  # source clock ahead: no negative lag
    assert value(m, "cdcd_milliseconds_behind_source") == 0


def test_kafka_outcomes_and_in_flight() -> None:
    m = Metrics(process_metrics=False)
    m.set_in_flight(10, 4096)
    assert value(m, "cdcd_in_flight_bytes") == 4096
    m.kafka_committed(0.02, oldest_record_age_s=0.1)
    m.kafka_aborted()
    assert value(m, "cdcd_kafka_transactions_total", outcome="committed") == 1
    assert value(m, "cdcd_kafka_transactions_total", outcome="aborted") == 1
    assert value(m, "cdcd_kafka_commit_duration_seconds_count") == 1
    assert value(m, "cdcd_kafka_commit_duration_seconds_bucket", le="0.025") == 1
    assert value(m, "cdcd_kafka_produce_latency_seconds_sum") == pytest.approx(0.1)
    assert value(m, "cdcd_in_flight_events") == 0


def test_lsn_and_lifecycle() -> None:
    m = Metrics(process_metrics=False)
    m.set_lsn(0x16_3002D50, 0x16_3002D00, 0x16_3000000)
    assert value(m, "cdcd_lsn", position="received") == 0x16_3002D50
    assert value(m, "cdcd_lsn", position="confirmed") == 0x16_3000000
    m.reconnect("SourceUnavailable")
    m.error("slot_poll")
    m.set_connected("kafka", True)
    m.set_streaming(True)
    m.snapshot_counter("public.t").inc(5)
    m.set_snapshot_estimate("public.t", 100)
    assert value(m, "cdcd_reconnects_total", cause="SourceUnavailable") == 1
    assert value(m, "cdcd_errors_total", kind="slot_poll") == 1
    assert value(m, "cdcd_connected", peer="kafka") == 1
    assert value(m, "cdcd_streaming") == 1
    assert value(m, "cdcd_snapshot_rows_total", table="public.t") == 5
    assert value(m, "cdcd_snapshot_rows_estimated", table="public.t") == 100


# -- slot lag poller -------------------------------------------------------------------------

class FakeConn:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.closed = False
        self.queries: list[tuple[str, Any]] = []

    def cursor(self) -> FakeConn:
        return self

    def __enter__(self) -> FakeConn:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, query: str, params: Any = None) -> None:
        self.queries.append((query, params))
        row = self.rows.pop(0)
        if isinstance(row, Exception):
            raise row
        self._row = row

    def fetchone(self) -> Any:
        return self._row

    def close(self) -> None:
        self.closed = True


def test_poller_sets_gauges_and_survives_errors() -> None:
    m = Metrics(process_metrics=False)
    conns: list[FakeConn] = []
    script: list[Any] = [(100, 5000), OSError("server closed the connection"), None, (7, 8)]

    def connect(dsn: str) -> FakeConn:
        assert dsn == "dbname=x"
        conns.append(FakeConn(script))
        return conns[-1]

    poller = SlotLagPoller("dbname=x", "cdcd", m, connect=connect)
    assert poller.poll_once() == (100, 5000)
    assert conns[0].queries == [(SLOT_QUERY, ("cdcd",))]
    assert value(m, "cdcd_slot_lag_bytes") == 100
    assert value(m, "cdcd_slot_retained_wal_bytes") == 5000

    assert poller.poll_once() is None  # error: counted, gauges unknown, connection dropped
    assert value(m, "cdcd_errors_total", kind="slot_poll") == 1
    assert math.isnan(value(m, "cdcd_slot_lag_bytes") or 0.0)
    assert conns[0].closed

    assert poller.poll_once() is None  # reconnected; no such slot (yet)
    assert len(conns) == 2
    assert value(m, "cdcd_errors_total", kind="slot_poll") == 1
    assert poller.poll_once() == (7, 8)


def test_poller_thread_polls_and_stops() -> None:
    m = Metrics(process_metrics=False)
    conn = FakeConn([(1, 2)] * 1000)
    poller = SlotLagPoller("", "cdcd", m, interval_s=0.01, connect=lambda dsn: conn).start()
    deadline = time.monotonic() + 5
    while len(conn.queries) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    poller.stop()
    assert len(conn.queries) >= 3
    assert conn.closed
    assert value(m, "cdcd_slot_lag_bytes") == 1


def test_poller_connect_failure_is_counted() -> None:
    m = Metrics(process_metrics=False)

    def refuse(dsn: str) -> FakeConn:
        raise ConnectionRefusedError("connection refused")

    poller = SlotLagPoller("", "cdcd", m, connect=refuse)
    assert poller.poll_once() is None
    assert poller.poll_once() is None
    assert value(m, "cdcd_errors_total", kind="slot_poll") == 2


def test_poller_against_postgresql(pg_db: Any) -> None:
    """The query itself: both figures are real byte counts, and lag grows with unconfirmed WAL."""
    pg_db.execute("SELECT pg_create_logical_replication_slot('metrics_slot', 'pgoutput')")
    m = Metrics(process_metrics=False)
    poller = SlotLagPoller(pg_db.dsn, "metrics_slot", m)
    try:
        lag, retained = poller.poll_once() or (-1, -1)
        assert 0 <= lag <= retained
        pg_db.execute("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 5000) g")
        lag2, retained2 = poller.poll_once() or (-1, -1)
        assert lag2 > lag + 500_000 and retained2 >= lag2
    finally:
        poller.stop()
    missing = SlotLagPoller(pg_db.dsn, "no_such_slot", m)
    assert missing.poll_once() is None  # not created yet: unknown, and no error
    missing.stop()
    assert value(m, "cdcd_errors_total", kind="slot_poll") is None
