"""Standby status updates: ``write`` = received, ``flush`` = what the tracker says may be confirmed."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from cdcd.delivery.sinks import Sink
from cdcd.delivery.tracker import LsnTracker
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.toast.plans import ToastHandler
from cdcd.wire.lsn import format_lsn
from cdcd.wire.replication import ReplicationConnection

log = structlog.get_logger("cdcd.pipeline")


class StatusReporter:
    """Sends a status update every ``status.interval.ms`` (and when the server asks), refreshing the gauges."""

    def __init__(self, repl: ReplicationConnection, tracker: LsnTracker, sink: Sink, *, kafka: bool,
                 toast: ToastHandler | None, metrics: Metrics, health: Health, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._repl, self._tracker, self._sink, self._kafka = repl, tracker, sink, kafka
        self._toast, self._metrics, self._health = toast, metrics, health
        self.interval_s = interval_s
        self._clock = clock
        self._next = 0.0

    def due(self) -> bool:
        return self._clock() >= self._next

    def send(self, in_flight_events: int, in_flight_bytes: int, *, reply: bool = False) -> None:
        tracker = self._tracker
        flush = tracker.confirmable()
        if self._toast is not None:  # before confirming: the cache must have seen up to what PostgreSQL forgets
            self._toast.on_position(flush)
        self._repl.send_status(tracker.received, flush, reply=reply)
        if tracker.reported(flush):
            log.debug("lsn_confirmed", lsn=format_lsn(flush))
        self._next = self._clock() + self.interval_s
        self._metrics.set_lsn(tracker.received, tracker.committed, tracker.confirmed)
        self._metrics.set_in_flight(in_flight_events, in_flight_bytes)
        if self._kafka:
            self._sink.poll()
            self._health.set_connected("kafka", not getattr(self._sink, "brokers_down", False))
