"""Run the real ``cdcd`` command as a subprocess, the way systemd or a container would.

``CdcdProcess`` captures stderr (JSON log lines) to a file so tests can wait
for stable event names, send signals and read exit codes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest


class CdcdProcess:
    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None,
                 stdout: int | None = subprocess.DEVNULL) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="cdcd-proc-"))
        self.stderr_path = self.workdir / "stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.update({"CDCD_LOG_FORMAT": "json", "CDCD_LOG_LEVEL": "debug", "CDCD_HTTP_PORT": "0",
                         "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "cdcd", *args], stdout=stdout,
                                     stderr=self._stderr, env=full_env)

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
    """Collects started processes and kills any left running at teardown."""
    procs: list[CdcdProcess] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.kill()
