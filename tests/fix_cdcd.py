"""Run the real ``cdcd`` command as a subprocess, the way systemd or a container would.

``CdcdProcess`` captures stderr (JSON log lines) to a file so tests can wait
for stable event names, send signals and read exit codes.  With ``stdout=PIPE`` (the
stdout sink) ``proc.stdout`` is a `CheckedStdout`: every line a test reads from it goes
through a real Kafka Connect consumer (``tests/connect_consumer.py``) on a checker
thread, and a rejected line fails the test at teardown of ``cdcd_procs``.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from tests.connect_consumer import check_stdout_line, connect_consumer


class CheckedStdout:
    """cdcd's stdout pipe; each line read is also checked as a Connect consumer reads it.

    Reading is not slowed down: complete lines go to a checker thread, so a test that waits
    for lines with a deadline waits for cdcd, not for the JVM.  `finish` waits until every
    line read so far was checked and returns the rejections (``cdcd_procs`` fails the test
    with them at teardown).
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._partial = b""
        self._queue: queue.Queue[bytes] = queue.Queue()
        self.rejected: list[str] = []
        self.checked = 0
        self._checker = threading.Thread(target=self._run_checks, name="connect-check", daemon=True)
        self._checker.start()

    def _run_checks(self) -> None:
        while True:
            line = self._queue.get()
            try:
                if check_stdout_line(line) is not None:
                    self.checked += 1
            except AssertionError as exc:
                self.rejected.append(str(exc))
            except BaseException as exc:  # noqa: BLE001 - e.g. the JVM missing: reported like a rejection
                self.rejected.append(f"{type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def _check(self, data: bytes) -> bytes:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._queue.put(line)
        return data

    def finish(self, timeout: float = 300.0) -> list[str]:
        """Wait until every line read was checked; the rejections (empty when all passed)."""
        if self._partial:
            self._queue.put(self._partial)
            self._partial = b""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._queue.unfinished_tasks:
            return self.rejected + [f"{self._queue.unfinished_tasks} lines still unchecked after {timeout:.0f} s"]
        return self.rejected

    def read(self, size: int = -1) -> bytes:
        return self._check(self._raw.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._check(self._raw.readline(size))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@functools.cache
def _workdir_root() -> Path:
    """One temporary folder per test process for every cdcd's stderr log, removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="cdcd-procs-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


class CdcdProcess:
    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None,
                 stdout: int | None = subprocess.DEVNULL) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="cdcd-proc-", dir=_workdir_root()))
        self.stderr_path = self.workdir / "stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.update({"CDCD_LOG_FORMAT": "json", "CDCD_LOG_LEVEL": "debug", "CDCD_HTTP_PORT": "0",
                         "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "cdcd", *args], stdout=stdout,
                                     stderr=self._stderr, env=full_env)
        self.stdout: CheckedStdout | None = None
        if self.proc.stdout is not None:
            self.stdout = CheckedStdout(self.proc.stdout)
            self.proc.stdout = self.stdout  # type: ignore[assignment]

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "raw", "line": line})
        return out

    def text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, event: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.logs():
                if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                    return entry
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"cdcd never logged {event!r} {fields or ''} (exit={self.proc.poll()}):\n{self.text()}")

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(10)
        self._stderr.close()
        return code

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()


@pytest.fixture
def cdcd_procs() -> Iterator[list[CdcdProcess]]:
    """Collects started processes and kills any left running at teardown; fails the test
    when Kafka Connect rejected a line of their stdout."""
    connect_consumer()  # start the JVM here, not inside a test's deadline
    procs: list[CdcdProcess] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.kill()
    rejected = [msg for p in procs if p.stdout is not None for msg in p.stdout.finish()]
    if rejected:
        pytest.fail(f"{len(rejected)} stdout record(s) rejected by Kafka Connect; first:\n{rejected[0]}",
                    pytrace=False)


class StdoutRun:
    """``cdcd run --sink stdout`` with its JSON lines collected as they arrive."""

    def __init__(self, procs: list[CdcdProcess], pg_db: Any, *args: str, env: dict[str, str] | None = None,
                 command: Sequence[str] | None = None) -> None:
        """``args`` follow the defaults (``--topic-prefix ev``); ``command`` replaces the whole command line."""
        default = ["run", "--dsn", pg_db.dsn, "--sink", "stdout", "--topic-prefix", "ev", *args]
        self.proc = CdcdProcess(list(command) if command is not None else default, env=env, stdout=subprocess.PIPE)
        procs.append(self.proc)
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.proc.wait_for("streaming")

    def _read(self) -> None:
        assert self.proc.proc.stdout is not None
        for line in self.proc.proc.stdout:
            self.lines.append(json.loads(line))

    def wait(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.lines) >= count, f"expected {count} events, got {self.lines}"
        return self.lines

    def through_marker(self, pg_db: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every line printed before a marker written now, without the marker.

        The marker is a transactional logical message: cdcd prints in commit order, so once it is
        out, nothing committed before it is still to come. This is how a test shows that nothing
        more arrives (a skipped operation, a rolled-back change) without sleeping.
        """
        prefix = f"test.marker.{uuid.uuid4().hex[:12]}"
        pg_db.execute("SELECT pg_logical_emit_message(true, %s, '')", (prefix,))

        def is_marker(line: dict[str, Any]) -> bool:
            return bool(line["topic"].endswith(".message") and line["key"]
                        and line["key"]["payload"] == {"prefix": prefix})

        deadline = time.monotonic() + timeout
        while not any(is_marker(line) for line in list(self.lines)):
            assert self.proc.proc.poll() is None, f"cdcd exited {self.proc.proc.poll()}:\n{self.proc.text()}"
            assert time.monotonic() < deadline, f"the marker never arrived; got {self.lines}"
            time.sleep(0.05)
        lines = list(self.lines)
        return lines[:next(i for i, line in enumerate(lines) if is_marker(line))]

    def stop(self) -> None:
        assert self.proc.terminate() == 0
