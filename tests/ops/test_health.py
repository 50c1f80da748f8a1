"""Health: liveness from loop ticks, readiness from connections and streaming."""

from __future__ import annotations

import threading

import pytest

from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_healthy_until_the_loop_stalls() -> None:
    clock = Clock()
    health = Health(stall_after_s=30, clock=clock)
    assert health.healthy()  # startup counts as progress
    clock.now += 29
    assert health.healthy().reason == "ok"
    clock.now += 2
    verdict = health.healthy()
    assert not verdict and "stalled" in verdict.reason and "31.0 s" in verdict.reason
    health.loop_tick()
    assert health.healthy()
    assert not health.healthy(now=clock.now + 31)


def test_ready_needs_both_peers_and_streaming() -> None:
    health = Health()
    verdict = health.ready()
    assert not verdict
    assert verdict.reason == "postgresql not connected; kafka not connected; not streaming"
    health.set_connected("postgresql", True)
    health.set_connected("kafka", True)
    assert health.ready().reason == "not streaming"
    health.set_streaming(True)
    assert health.ready() and health.ready().reason == "ok"
    health.set_connected("kafka", False)
    assert health.ready().reason == "kafka not connected"


def test_stdout_sink_does_not_need_kafka() -> None:
    health = Health(require_kafka=False)
    health.set_connected("postgresql", True)
    health.set_streaming(True)
    assert health.ready()


def test_unknown_peer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown peer"):
        Health().set_connected("redis", True)


def test_mirrors_into_metrics() -> None:
    metrics = Metrics(process_metrics=False)
    health = Health(metrics=metrics)
    health.set_connected("postgresql", True)
    health.set_streaming(True)
    assert metrics.registry.get_sample_value("cdcd_connected", {"peer": "postgresql"}) == 1
    assert metrics.registry.get_sample_value("cdcd_streaming") == 1


def test_concurrent_readers_and_writers() -> None:
    health = Health()
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                health.ready()
                health.healthy()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for i in range(2000):
        health.set_connected("kafka", i % 2 == 0)
        health.set_streaming(i % 3 == 0)
        health.loop_tick()
    stop.set()
    for t in readers:
        t.join()
    assert not errors
