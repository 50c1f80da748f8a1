"""The stdout sink: JSON lines ``{"topic","key","value"}`` to pipe into jq.

Key and value are embedded as JSON (not strings), ``null`` for tombstones.
A "transaction" is a flush: the LSN is confirmed once the lines are written.
"""

from __future__ import annotations

import io
import sys
from typing import BinaryIO

import orjson

from ..envelope import Record


class StdoutSink:
    def __init__(self, stream: BinaryIO | None = None) -> None:
        raw = stream if stream is not None else sys.stdout.buffer
        # A large buffer: one write syscall per batch rather than per few events.
        self._out: BinaryIO = io.BufferedWriter(raw, buffer_size=1 << 20)  # type: ignore[arg-type]
        self._open = False

    @property
    def in_transaction(self) -> bool:
        return self._open

    def start(self) -> None:
        pass

    def send(self, record: Record) -> None:
        self._open = True
        self._out.write(b"".join((b'{"topic":', orjson.dumps(record.topic),
                                  b',"key":', b"null" if record.key is None else record.key,
                                  b',"value":', b"null" if record.value is None else record.value, b"}\n")))

    def commit(self, timeout_s: float | None = None) -> None:
        self._out.flush()
        self._open = False

    def abort(self) -> None:
        # Lines already written cannot be taken back; they will be written again
        # after the restart from the last confirmed LSN (at-least-once on stdout).
        self._open = False

    def poll(self) -> None:
        pass

    def close(self) -> None:
        try:
            self._out.flush()
        except (BrokenPipeError, ValueError):
            pass
