"""Heartbeats: a record on ``<topic.heartbeat.prefix>.<topic.prefix>`` every ``heartbeat.interval.ms``.

As Debezium's, they let consumers (and the offsets) see progress while the captured
tables are quiet; ``heartbeat.action.query`` additionally writes to the database, so a
slot on a database with no captured traffic still sees WAL to confirm.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from cdcd.config import Config
from cdcd.debezium.envelope import Record
from cdcd.debezium.heartbeat import heartbeat_record

log = structlog.get_logger("cdcd.pipeline")


class Heartbeat:
    def __init__(self, config: Config, execute: Callable[[str], Any] | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = config.heartbeat_interval_ms / 1000.0
        self._topic_prefix, self._server = config.topic_heartbeat_prefix, config.topic_prefix
        self._query = config.heartbeat_action_query
        self._execute = execute
        self._clock = clock
        self._next = clock() + self._interval_s

    def due(self) -> bool:
        return bool(self._interval_s) and self._clock() >= self._next

    def beat(self, send: Callable[[Record], None]) -> None:
        """Send the heartbeat record, then run the action query; the next one is due an interval from now."""
        self._next = self._clock() + self._interval_s
        send(heartbeat_record(self._topic_prefix, self._server))
        if self._query and self._execute is not None:
            try:
                self._execute(self._query)
            except Exception as exc:  # noqa: BLE001 - a failing heartbeat query must not stop streaming
                log.warning("heartbeat_action_query_failed", error=str(exc))
