"""Liveness and readiness, as the HTTP probes and the systemd watchdog see them.

*Healthy* (liveness) means the process is not stuck: the main loop ticked
within ``stall_after_s``. It stays true while cdcd waits to reconnect to a
source or broker that is down, because restarting would not help then.
*Ready* means changes are flowing: PostgreSQL connected, Kafka connected (or
the sink is stdout) and a streaming session running.

Writers (the main loop) and readers (HTTP threads, the watchdog thread)
differ, so state changes take a lock; ``loop_tick`` only stores a float,
which is atomic under the GIL, so the hot loop pays no lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdcd.ops.metrics import Metrics

DEFAULT_STALL_AFTER_S = 60.0
"""Above kafka.timeout.ms (30 s) and the reconnect backoff cap (30 s): a slow commit is no stall."""


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


class Health:
    """Thread-safe health state; ``metrics``, when given, mirrors connected/streaming as gauges."""

    def __init__(self, *, stall_after_s: float = DEFAULT_STALL_AFTER_S, require_kafka: bool = True,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self.require_kafka = require_kafka
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._last_tick = clock()  # startup counts as progress until the first tick
        self._connected = {"postgresql": False, "kafka": False}
        self._streaming = False

    def loop_tick(self, now: float | None = None) -> None:
        """The main loop made progress; call once per iteration (or per wait slice)."""
        self._last_tick = self._clock() if now is None else now

    def set_connected(self, peer: str, connected: bool) -> None:
        if peer not in self._connected:
            raise ValueError(f"unknown peer {peer!r}: expected one of {', '.join(self._connected)}")
        with self._lock:
            self._connected[peer] = connected
        if self._metrics is not None:
            self._metrics.set_connected(peer, connected)

    def set_streaming(self, streaming: bool) -> None:
        with self._lock:
            self._streaming = streaming
        if self._metrics is not None:
            self._metrics.set_streaming(streaming)

    def healthy(self, now: float | None = None) -> Verdict:
        now = self._clock() if now is None else now
        idle = now - self._last_tick
        if idle > self.stall_after_s:
            return Verdict(False, f"main loop stalled: no iteration for {idle:.1f} s "
                                  f"(threshold {self.stall_after_s:g} s)")
        return Verdict(True, "ok")

    def ready(self) -> Verdict:
        with self._lock:
            missing = [peer for peer, up in self._connected.items()
                       if not up and (peer != "kafka" or self.require_kafka)]
            streaming = self._streaming
        problems = [f"{peer} not connected" for peer in missing]
        if not streaming:
            problems.append("not streaming")
        return Verdict(not problems, "; ".join(problems) or "ok")
