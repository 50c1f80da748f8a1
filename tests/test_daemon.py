"""Daemon steps with fakes: the order of a session, the retry loop, opening the slot. No waiting:
the stop event answers at once and the backoff delay is recorded, not slept."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

from cdcd import config as config_mod
from cdcd import daemon as daemon_mod
from cdcd.daemon import Daemon, _Attempt
from cdcd.delivery.offsets import OffsetStore, SourceOffset
from cdcd.errors import SourceError, SourceUnavailable
from cdcd.snapshot.initial import SnapshotStopped, Snapshotted
from cdcd.source.slot import RetriableErrorActiveSlot
from cdcd.wire.replication import SystemIdentity

IDENTITY = SystemIdentity("7000000000000000001", 1, 0x9000, "shop")


class InstantStop(threading.Event):
    """``wait`` records the timeout and returns at once; it stops after ``rounds`` waits."""

    def __init__(self, rounds: int = 100) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.rounds = rounds

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        if len(self.waits) >= self.rounds:
            self.set()
        return self.is_set()


class Repl:
    def __init__(self) -> None:
        self.started: list[int] = []
        self.closed = False

    def start(self, slot: str, start: int, publications: list[str]) -> None:
        self.started.append(start)

    def slot_info(self, slot: str) -> Any:
        from cdcd.wire.replication import SlotInfo

        return SlotInfo(slot, "pgoutput", "shop", False, 0x4000, "reserved")

    def close(self) -> None:
        self.closed = True


def make(stop: threading.Event | None = None, **overrides: Any) -> Daemon:
    cfg = config_mod.load(env={}, overrides={"dsn": "host=x", "sink": "kafka", "topic_prefix": "shop",
                                             "slot_name": "cdcd", **overrides})
    return Daemon(cfg, stop=stop or threading.Event())


# -- one session, top to bottom --------------------------------------------------------------

def recording(daemon: Daemon, snapshot: Any = None) -> list[str]:
    calls: list[str] = []
    stored = SourceOffset(0x3000, 7)
    daemon._take_slot = lambda a: calls.append("take slot")  # type: ignore[method-assign]
    daemon._fence = lambda a: calls.append("fence")  # type: ignore[method-assign]

    def load() -> tuple[Any, Any]:
        calls.append("load offsets")
        return None, stored
    daemon._load_offsets = load  # type: ignore[method-assign]

    def snap(a: Any, s: Any, o: Any) -> Any:
        calls.append("snapshot")
        return snapshot
    daemon._snapshot_if_needed = snap  # type: ignore[method-assign]

    def open_slot(a: Any, s: Any, o: Any) -> Any:
        calls.append(f"open slot from {s.lsn:X}")
        return None, 0
    daemon._open_slot = open_slot  # type: ignore[method-assign]

    def stream(a: Any, t: Any, start: int, s: Any, o: Any, resumed_from: Any) -> None:
        calls.append(f"stream (resumed from {resumed_from and hex(resumed_from)})")
    daemon._stream = stream  # type: ignore[method-assign]
    daemon._end_session = lambda a: calls.append("shut down")  # type: ignore[method-assign]
    return calls


def test_a_session_reads_top_to_bottom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "ReplicationConnection", lambda dsn: Repl())
    daemon = make()
    calls = recording(daemon)
    daemon._session()
    assert calls == ["take slot", "fence", "load offsets", "snapshot", "open slot from 3000",
                     "stream (resumed from 0x3000)", "shut down"]


def test_after_a_snapshot_the_session_streams_from_its_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "ReplicationConnection", lambda dsn: Repl())
    daemon = make()
    calls = recording(daemon, Snapshotted(Repl(), SourceOffset(0x8000, 9)))  # type: ignore[arg-type]
    daemon._session()
    assert calls[4:] == ["open slot from 8000", "stream (resumed from None)", "shut down"]


def test_a_stopped_snapshot_ends_the_session_without_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "ReplicationConnection", lambda dsn: Repl())
    daemon = make()
    calls = recording(daemon, SnapshotStopped(completed=True))
    daemon._session()
    assert calls == ["take slot", "fence", "load offsets", "snapshot", "shut down"]


def test_a_failing_step_still_shuts_the_session_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "ReplicationConnection", lambda dsn: Repl())
    daemon = make()
    calls = recording(daemon)

    def fence(a: Any) -> None:
        raise SourceUnavailable("gone")
    daemon._fence = fence  # type: ignore[method-assign]
    with pytest.raises(SourceUnavailable):
        daemon._session()
    assert calls == ["take slot", "shut down"]


def test_a_session_streams_with_its_set_up_objects_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    class Session:
        def __init__(self, parts: Any) -> None:
            pass

        def run(self, stop: threading.Event) -> None:
            seen.append(gc.get_freeze_count())
            raise SourceUnavailable("gone")

    monkeypatch.setattr(daemon_mod, "build_parts", lambda *args: None)
    monkeypatch.setattr(daemon_mod, "StreamingSession", Session)
    daemon = make()
    daemon.catalog = object()  # type: ignore[assignment]
    attempt = _Attempt(Repl())  # type: ignore[arg-type]
    attempt.identity, attempt.sink = IDENTITY, object()  # type: ignore[assignment]
    with pytest.raises(SourceUnavailable):
        daemon._stream(attempt, None, 0x3000, None, None, None)  # type: ignore[arg-type]
    assert seen and seen[0] > 1000  # the imports alone are tens of thousands of objects
    assert gc.get_freeze_count() == 0


# -- reconnecting ------------------------------------------------------------------------------

def test_failures_back_off_longer_until_a_session_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = InstantStop()
    daemon = make(stop)
    attempts: list[int] = []
    monkeypatch.setattr(daemon_mod, "backoff_delay", lambda attempt: attempts.append(attempt) or 0.0)
    daemon._reconnect_catalog = lambda: None  # type: ignore[method-assign]
    outcomes = iter(["fail", "fail", "stream then fail", "fail", "stop"])

    def session() -> None:
        outcome = next(outcomes)
        if outcome == "stop":
            stop.set()
            return
        if outcome.startswith("stream"):
            daemon._streamed = True
        raise SourceUnavailable("PostgreSQL restarted")
    daemon._session = session  # type: ignore[method-assign]
    daemon._sessions()
    assert attempts == [0, 1, 0, 1], "a session that streamed starts the backoff over"


def test_an_active_slot_waits_as_a_standby_and_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = InstantStop(rounds=3)
    daemon = make(stop, standby_poll_ms=250)
    statuses: list[str] = []
    daemon.notifier.status = statuses.append  # type: ignore[method-assign]

    def session() -> None:
        raise RetriableErrorActiveSlot("slot 'cdcd' is active for another client")
    daemon._session = session  # type: ignore[method-assign]
    daemon._sessions()
    assert stop.waits == [0.25, 0.25, 0.25]
    assert statuses == ["standby: slot cdcd is held by another instance"], "said once, not every poll"


def test_a_broken_catalog_connection_counts_as_a_lost_source(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    stop = InstantStop(rounds=1)
    daemon = make(stop)
    monkeypatch.setattr(daemon_mod, "backoff_delay", lambda attempt: 0.0)
    daemon._reconnect_catalog = lambda: None  # type: ignore[method-assign]

    def session() -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")
    daemon._session = session  # type: ignore[method-assign]
    daemon._sessions()
    assert stop.waits == [0.0], "retried with backoff, not raised"


# -- opening the slot --------------------------------------------------------------------------

def attempt(owned: int | None = None) -> _Attempt:
    return _Attempt(Repl(), identity=IDENTITY, owned=owned)  # type: ignore[arg-type]


def test_open_slot_starts_replication_at_the_latest_known_position() -> None:
    daemon = make()
    a = attempt()
    tracker, start = daemon._open_slot(a, SourceOffset(0x6000, 3, system_id=IDENTITY.system_id), None)
    assert start == 0x6000 and a.repl.started == [0x6000], "Kafka holds more than the slot confirmed"  # type: ignore
    assert tracker.committed == 0x4000, "the tracker starts at the slot's confirmed position"
    assert daemon._open_slot(attempt(), None, None)[1] == 0x4000


def test_open_slot_keeps_one_tracker_across_sessions() -> None:
    daemon = make()
    first, _ = daemon._open_slot(attempt(), None, None)
    first.transaction_began()
    second, _ = daemon._open_slot(attempt(), None, None)
    assert second is first and not second.in_transaction, "what the last session had in flight is forgotten"


def test_an_owned_slot_is_already_streaming() -> None:
    daemon = make()
    a = attempt(owned=0x5000)
    tracker, start = daemon._open_slot(a, None, None)
    assert start == 0x5000 and tracker.committed == 0x5000 and not a.repl.started  # type: ignore[attr-defined]


def test_offsets_of_another_cluster_stop_cdcd() -> None:
    daemon = make()
    stored = SourceOffset(0x6000, 3, system_id="6999999999999999999")
    with pytest.raises(SourceError, match="come from PostgreSQL system 6999999999999999999, but this server is "
                                          "7000000000000000001"):
        daemon._open_slot(attempt(), stored, OffsetStore("shop.offsets", "shop", "cdcd"))


def test_offsets_are_not_read_for_the_stdout_sink() -> None:
    assert make(sink="stdout")._load_offsets() == (None, None)
