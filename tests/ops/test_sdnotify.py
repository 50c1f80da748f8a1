"""sd_notify: datagrams on a real AF_UNIX socket, as systemd would receive them."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cdcd.ops.health import Health
from cdcd.ops.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield sock
    finally:
        sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_no_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False
    assert notifier.watchdog_interval() is None
    assert notifier.start_watchdog() is False


def test_lifecycle_messages(listener: socket.socket) -> None:
    notifier = Notifier()
    assert notifier.enabled
    assert notifier.status("connecting to PostgreSQL")
    assert receive(listener) == "STATUS=connecting to PostgreSQL"
    assert notifier.ready("streaming slot cdcd")
    assert receive(listener) == "READY=1\nSTATUS=streaming slot cdcd"
    notifier.status("line one\nline two")  # one message per line would be read as two fields
    assert receive(listener) == "STATUS=line one line two"
    assert notifier.watchdog()
    assert receive(listener) == "WATCHDOG=1"
    assert notifier.stopping()
    assert receive(listener) == "STOPPING=1"


def test_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cdcd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().ready()
        assert receive(sock) == "READY=1"


def test_watchdog_interval(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Notifier().watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert Notifier().watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert Notifier().watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "soon")
    assert Notifier().watchdog_interval() is None


class Rounds:
    """The watchdog thread's stop event, stepped by the test: ``wait(period)`` returns at once.

    It records each period asked for, runs ``actions[i]`` before returning from wait ``i``, and
    stops the loop after the last round, so what the thread does is decided by rounds, not time.
    """

    def __init__(self, rounds: int, actions: dict[int, Callable[[], object]] | None = None) -> None:
        self.rounds, self.actions, self.periods = rounds, actions or {}, []

    def wait(self, period: float) -> bool:
        self.actions.get(len(self.periods), lambda: None)()
        self.periods.append(period)
        return len(self.periods) >= self.rounds

    def set(self) -> None:
        pass


def pending(sock: socket.socket) -> list[str]:
    """Every datagram already queued on ``sock``."""
    sock.setblocking(False)
    found = []
    while True:
        try:
            found.append(receive(sock))
        except BlockingIOError:
            return found


def test_watchdog_pings_at_half_the_interval(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: a ping every 0.1 s
    rounds = Rounds(4)
    notifier = Notifier(stop=rounds)  # type: ignore[arg-type]
    assert notifier.start_watchdog()
    notifier.stop_watchdog()  # joins the thread: its four rounds are done
    assert rounds.periods == [0.1] * 4
    assert pending(listener) == ["WATCHDOG=1"] * 4


def test_watchdog_withheld_while_unhealthy(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    now = [0.0]
    health = Health(stall_after_s=1, clock=lambda: now[0])

    def stall() -> None:
        now[0] = 5.0  # the main loop stalled

    # round 0 healthy (ping), then the stall: rounds 1 and 2 withheld; the loop ticks again: round 3 pings
    rounds = Rounds(4, {0: stall, 2: health.loop_tick})
    notifier = Notifier(stop=rounds)  # type: ignore[arg-type]
    assert notifier.start_watchdog(health.healthy)
    notifier.stop_watchdog()
    assert len(rounds.periods) == 4
    assert pending(listener) == ["WATCHDOG=1", "WATCHDOG=1"]



def test_unreachable_socket_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    notifier = Notifier()
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.stopping() is False
