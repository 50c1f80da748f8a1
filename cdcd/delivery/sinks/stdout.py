"""The stdout sink: JSON lines ``{"topic","key","value"}`` to pipe into jq.

Key and value are embedded as JSON (not strings), ``null`` for tombstones.
A "transaction" is a flush: the LSN is confirmed once the lines are written.
Commits are synchronous: ``commit_start`` writes at once and ``commit_finished``
reports it.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

import orjson

from cdcd.debezium.envelope import Record
from cdcd.delivery.sinks import CommitsAtOnce

_FLUSH_BYTES = 1 << 20


class StdoutSink(CommitsAtOnce):
    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._out = stream if stream is not None else sys.stdout.buffer
        # Lines are joined and written once per batch (or per MiB), not per event.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._open = False

    @property
    def in_transaction(self) -> bool:
        return self._open

    def start(self) -> None:
        pass

    def send(self, record: Record) -> None:
        self._open = True
        line = b"".join((b'{"topic":', orjson.dumps(record.topic),
                         b',"key":', b"null" if record.key is None else record.key,
                         b',"value":', b"null" if record.value is None else record.value, b"}\n"))
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= _FLUSH_BYTES:
            self._write()

    def _write(self) -> None:
        self._out.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_bytes = 0

    def commit(self, timeout_s: float | None = None) -> None:
        self._write()
        self._out.flush()
        self._open = False

    def abort(self) -> None:
        # Unwritten lines are dropped; lines already written cannot be taken back and
        # are written again after the restart from the last confirmed LSN (at-least-once).
        self._pending.clear()
        self._pending_bytes = 0
        self._open = False

    def poll(self) -> None:
        pass

    def close(self) -> None:
        try:
            self._write()
            self._out.flush()
        except (BrokenPipeError, ValueError):
            pass
