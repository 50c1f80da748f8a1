"""Prometheus metrics: one registry per daemon, cheap helpers for the hot path.

Metrics live in their own ``CollectorRegistry`` (not the process-global one)
so tests and embedders can create several side by side. Names follow the
Prometheus conventions: base units (seconds, bytes), ``_total`` counters.

The hot path never calls ``.labels()`` per event: ``events_counter(table, op)``
hands out a cached child, and per-transaction helpers touch a few plain
children. Values the pipeline already holds (LSN positions, in-flight
events) are pushed from its once-a-second status tick, not per event.

Slot figures come from PostgreSQL itself (``pg_replication_slots``), polled
by ``SlotLagPoller`` on a connection of its own so a slow catalog query can
never stall streaming.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from cdcd import __version__, native

log = structlog.get_logger("cdcd.metrics")

# From a local broker's milliseconds up to kafka.timeout.ms (30 s by default).
_KAFKA_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

PEERS = ("postgresql", "kafka")
LSN_POSITIONS = ("received", "committed", "confirmed")


class Metrics:
    """Every cdcd metric, registered in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None, *, version: str = __version__,
                 process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process_metrics:
            # process_* (memory, CPU, fds) and python_info: a daemon's basic vital signs.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)

        self.events = Counter("cdcd_events_total", "Change events emitted, by table and Debezium op",
                              ("table", "op"), registry=r)
        self.transactions = Counter("cdcd_transactions_total", "PostgreSQL transactions processed", registry=r)
        self.kafka_transactions = Counter("cdcd_kafka_transactions_total", "Kafka transactions ended, by outcome",
                                          ("outcome",), registry=r)
        self.last_event_age = Gauge(
            "cdcd_last_event_age_seconds",
            "Seconds since the source commit timestamp of the newest processed transaction "
            "(NaN before the first; compares clocks of two hosts)", registry=r)
        self.behind_source = Gauge(
            "cdcd_milliseconds_behind_source",
            "Processing time minus source commit time of the last transaction (Debezium MilliSecondsBehindSource)",
            registry=r)
        self.lsn = Gauge("cdcd_lsn", "WAL positions as 64-bit integers: received from the walsender, "
                         "committed to Kafka, confirmed to PostgreSQL", ("position",), registry=r)
        self.slot_lag = Gauge(
            "cdcd_slot_lag_bytes",
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) of the slot: WAL not yet confirmed",
            registry=r)
        self.slot_retained = Gauge(
            "cdcd_slot_retained_wal_bytes",
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) of the slot: WAL the server keeps for it",
            registry=r)
        self.produce_latency = Histogram(
            "cdcd_kafka_produce_latency_seconds",
            "From handing the oldest record of a Kafka transaction to the producer until the commit acknowledged it",
            buckets=_KAFKA_BUCKETS, registry=r)
        self.commit_duration = Histogram("cdcd_kafka_commit_duration_seconds", "Duration of commit_transaction",
                                         buckets=_KAFKA_BUCKETS, registry=r)
        self.in_flight_events = Gauge("cdcd_in_flight_events", "Records in the open Kafka transaction", registry=r)
        self.in_flight_bytes = Gauge("cdcd_in_flight_bytes", "Key and value bytes in the open Kafka transaction",
                                     registry=r)
        self.reconnects = Counter("cdcd_reconnects_total", "Streaming sessions restarted, by cause",
                                  ("cause",), registry=r)
        self.errors = Counter("cdcd_errors_total", "Errors, by kind", ("kind",), registry=r)
        self.snapshot_rows = Counter("cdcd_snapshot_rows_total", "Rows read by the initial snapshot",
                                     ("table",), registry=r)
        self.snapshot_estimated = Gauge("cdcd_snapshot_rows_estimated", "Estimated rows to snapshot (reltuples)",
                                        ("table",), registry=r)
        self.incremental_rows = Counter("cdcd_incremental_snapshot_rows_total",
                                        "Rows emitted by incremental snapshots (after deduplication)",
                                        ("table",), registry=r)
        self.incremental_tables = Gauge("cdcd_incremental_snapshot_tables_remaining",
                                        "Tables an incremental snapshot still has to read (the current one "
                                        "included); 0 when none runs", registry=r)
        self.incremental_paused = Gauge("cdcd_incremental_snapshot_paused", "1 while the incremental snapshot "
                                        "is paused by a pause-snapshot signal", registry=r)
        self.connected = Gauge("cdcd_connected", "1 while connected to the peer", ("peer",), registry=r)
        self.streaming = Gauge("cdcd_streaming", "1 while a streaming session runs", registry=r)
        Info("cdcd_build", "cdcd version and the core that encodes events (compiled or python)",
             registry=r).info({"version": version, "core": native.CORE})

        self._event_children: dict[tuple[str, str], Counter] = {}
        self._last_commit_ts_s = math.nan
        self.last_event_age.set_function(self._last_event_age)
        self._lsn = tuple(self.lsn.labels(position=p) for p in LSN_POSITIONS)
        self._committed = self.kafka_transactions.labels(outcome="committed")
        self._aborted = self.kafka_transactions.labels(outcome="aborted")
        for peer in PEERS:
            self.connected.labels(peer=peer).set(0)
        for gauge in (self.slot_lag, self.slot_retained):
            gauge.set(math.nan)  # unknown until the first poll, rather than a reassuring 0

    # -- hot path ----------------------------------------------------------------------------

    def events_counter(self, table: str, op: str) -> Counter:
        """The cached child for ``table`` (``schema.table``) and ``op`` (c/u/d/t/r): ``.inc()`` it."""
        key = (table, op)
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self.events.labels(table=table, op=op)
        return child

    def transaction_processed(self, commit_ts_us: int, now: float | None = None) -> None:
        """A PostgreSQL transaction ended (``commit_ts_us``: Unix epoch microseconds)."""
        now = time.time() if now is None else now
        self.transactions.inc()
        self._last_commit_ts_s = commit_ts_us / 1e6
        self.behind_source.set(max(0.0, (now - self._last_commit_ts_s) * 1000.0))

    def kafka_committed(self, commit_s: float, oldest_record_age_s: float | None = None) -> None:
        """A Kafka transaction committed after ``commit_s``; its oldest record waited ``oldest_record_age_s``."""
        self._committed.inc()
        self.commit_duration.observe(commit_s)
        if oldest_record_age_s is not None:
            self.produce_latency.observe(oldest_record_age_s)
        self.in_flight_events.set(0)
        self.in_flight_bytes.set(0)

    def kafka_aborted(self) -> None:
        self._aborted.inc()
        self.in_flight_events.set(0)
        self.in_flight_bytes.set(0)

    def set_lsn(self, received: int, committed: int, confirmed: int) -> None:
        """The tracker's positions; float64 is exact below 2**53 bytes of WAL (8 PiB)."""
        self._lsn[0].set(received)
        self._lsn[1].set(committed)
        self._lsn[2].set(confirmed)

    def set_in_flight(self, events: int, nbytes: int) -> None:
        self.in_flight_events.set(events)
        self.in_flight_bytes.set(nbytes)

    # -- lifecycle ---------------------------------------------------------------------------

    def reconnect(self, cause: str) -> None:
        """A streaming session ended and will be retried; ``cause`` is a short class name."""
        self.reconnects.labels(cause=cause).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()

    def set_connected(self, peer: str, connected: bool) -> None:
        self.connected.labels(peer=peer).set(1 if connected else 0)

    def set_streaming(self, streaming: bool) -> None:
        self.streaming.set(1 if streaming else 0)

    def snapshot_counter(self, table: str) -> Counter:
        return self.snapshot_rows.labels(table=table)

    def set_snapshot_estimate(self, table: str, rows: int) -> None:
        self.snapshot_estimated.labels(table=table).set(rows)

    def _last_event_age(self) -> float:
        return time.time() - self._last_commit_ts_s  # NaN until the first transaction


# -- slot lag poller -------------------------------------------------------------------------

# On a standby (logical slots there since PostgreSQL 16) pg_current_wal_lsn() fails: use replay.
SLOT_QUERY = """
SELECT pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn)::bigint,
       pg_wal_lsn_diff(w.lsn, s.restart_lsn)::bigint
FROM pg_replication_slots s,
     LATERAL (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                          ELSE pg_current_wal_lsn() END AS lsn) w
WHERE s.slot_name = %s
"""


class _Connection(Protocol):
    @property
    def closed(self) -> bool: ...

    def cursor(self) -> Any: ...

    def close(self) -> None: ...


def _connect(dsn: str) -> _Connection:
    import psycopg

    return psycopg.connect(dsn, autocommit=True, application_name="cdcd-metrics", connect_timeout=10,
                           options="-c statement_timeout=10000")


class SlotLagPoller:
    """Polls the slot's lag and retained WAL into ``metrics`` from a daemon thread.

    Failures never reach the pipeline: they are counted as
    ``cdcd_errors_total{kind="slot_poll"}``, logged once per outage, the gauges
    go to NaN (stale numbers would look healthy) and the next round reconnects.
    """

    def __init__(self, dsn: str, slot: str, metrics: Metrics, *, interval_s: float = 15.0,
                 connect: Callable[[str], _Connection] = _connect) -> None:
        self.dsn = dsn
        self.slot = slot
        self.metrics = metrics
        self.interval_s = interval_s
        self._connect = connect
        self._conn: _Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> SlotLagPoller:
        self._thread = threading.Thread(target=self._run, name="cdcd-slot-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval_s)

    def poll_once(self) -> tuple[int, int] | None:
        """One round; the two figures in bytes, or None when unknown (no slot yet, or an error)."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect(self.dsn)
            with self._conn.cursor() as cur:
                cur.execute(SLOT_QUERY, (self.slot,))
                row = cur.fetchone()
        except Exception as exc:  # noqa: BLE001 - a metrics side thread must never die
            self.metrics.error("slot_poll")
            self._set(None)
            self._close()
            if not self._failing:
                log.warning("slot_poll_failed", slot=self.slot, error=str(exc).strip(),
                            hint="cdcd_slot_lag_bytes is unknown until PostgreSQL answers again")
                self._failing = True
            return None
        if self._failing:
            log.info("slot_poll_recovered", slot=self.slot)
            self._failing = False
        figures = (int(row[0]), int(row[1])) if row and row[0] is not None and row[1] is not None else None
        self._set(figures)
        return figures

    def _set(self, figures: tuple[int, int] | None) -> None:
        lag, retained = figures if figures is not None else (math.nan, math.nan)
        self.metrics.slot_lag.set(lag)
        self.metrics.slot_retained.set(retained)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
