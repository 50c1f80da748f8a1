"""Heartbeats on a clock the test turns."""

from __future__ import annotations

from typing import Any

from cdcd import config as config_mod
from cdcd.session.heartbeat import Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def heartbeat(clock: Clock, execute: Any = None, **overrides: Any) -> Heartbeat:
    cfg = config_mod.load(env={}, overrides={"dsn": "host=x", "sink": "stdout", "topic_prefix": "shop",
                                             **overrides})
    return Heartbeat(cfg, execute, clock)


def test_off_by_default() -> None:
    clock = Clock()
    beat = heartbeat(clock)
    clock.now += 10_000
    assert not beat.due()


def test_due_every_interval_from_the_last_beat() -> None:
    clock = Clock()
    beat = heartbeat(clock, heartbeat_interval_ms=1000)
    assert not beat.due()
    clock.now += 1.0
    assert beat.due()
    sent: list[Any] = []
    beat.beat(sent.append)
    assert [r.topic for r in sent] == ["__debezium-heartbeat.shop"]
    assert not beat.due()
    clock.now += 0.999
    assert not beat.due()
    clock.now += 0.001
    assert beat.due()


def test_the_action_query_runs_after_the_record_and_its_failure_is_only_logged() -> None:
    clock = Clock()
    order: list[str] = []

    def execute(query: str) -> None:
        order.append(query)
        raise RuntimeError("relation does not exist")

    beat = heartbeat(clock, execute, heartbeat_interval_ms=1000,
                     heartbeat_action_query="UPDATE hb SET at = now()")
    beat.beat(lambda record: order.append("record"))
    assert order == ["record", "UPDATE hb SET at = now()"]
