"""systemd's sd_notify protocol, spoken directly: one datagram per state change.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the unit
started, shows ``STATUS=`` in ``systemctl status``, and with ``WatchdogSec=``
kills a process that stops sending ``WATCHDOG=1``. The protocol is a
newline-separated ``KEY=value`` datagram to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace), so no
libsystemd binding is needed. Without ``$NOTIFY_SOCKET`` (containers, a
shell) every call is a no-op.

The watchdog pinger only pings while the caller's health check passes: a
pinger that pings unconditionally would keep a stalled main loop alive.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("cdcd.sdnotify")


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None, *, stop: threading.Event | None = None) -> None:
        """``stop`` paces the watchdog thread (its ``wait(period)``): tests pass one that steps on demand."""
        env = os.environ if env is None else env
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._stop = stop if stop is not None else threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when disabled or undeliverable."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(assignments).encode(), self._address)
        except OSError as exc:
            if not self._warned:  # once: systemd may simply not listen (NotifyAccess=none)
                log.warning("sd_notify_failed", error=str(exc))
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={' '.join(text.splitlines())}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """``$WATCHDOG_USEC`` in seconds, when the watchdog is on and meant for this process."""
        if self._address is None or not self._watchdog_usec:
            return None
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 1_000_000 if usec > 0 else None

    def start_watchdog(self, healthy: Callable[[], object] = lambda: True) -> bool:
        """Ping every half interval while ``healthy()`` is truthy; False when no watchdog is asked for."""
        interval = self.watchdog_interval()
        if interval is None or self._thread is not None:
            return False
        self._thread = threading.Thread(target=self._ping, args=(interval / 2, healthy),
                                        name="cdcd-watchdog", daemon=True)
        self._thread.start()
        return True

    def stop_watchdog(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _ping(self, period: float, healthy: Callable[[], object]) -> None:
        while True:
            verdict = healthy()
            if verdict:
                self.watchdog()
            else:
                log.warning("watchdog_withheld", reason=str(getattr(verdict, "reason", verdict)))
            if self._stop.wait(period):
                return


def _address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace
    if value.startswith("/"):
        return value
    return None  # vsock:... and the like: not for a local daemon
