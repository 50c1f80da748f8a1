"""Rows of Debezium's signal table: signals, and the watermarks of the incremental snapshot.

When a watermark closes the snapshot's window, the chunk's rows (minus those the stream
changed meanwhile) are emitted right there, as Debezium does: ``op: "r"``,
``source.snapshot`` = ``incremental``, read just now, no ``transaction`` block, ``txId``
and ``lsn`` null, ``sequence`` at the watermark (docs/snapshots.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from cdcd.debezium.envelope import Record
from cdcd.debezium.source_info import SourceInfo
from cdcd.debezium.transforms.unwrap import Unwrapper
from cdcd.decode.messages import Delete, Insert, Update
from cdcd.snapshot.incremental import ChunkRows, IncrementalSnapshot
from cdcd.source.signal_table import signal_from_row
from cdcd.wire.lsn import format_lsn

log = structlog.get_logger("cdcd.pipeline")


class SignalRows:
    def __init__(self, incremental: IncrementalSnapshot, unwrap: Unwrapper | None, stats: Any) -> None:
        self._incremental, self._unwrap, self._stats = incremental, unwrap, stats

    def row(self, msg: Insert | Update | Delete, wal_start: int, last_commit_lsn: int | None,
            send: Callable[[Record], None]) -> None:
        """A signal-table row: a signal, or a watermark that may close the incremental snapshot's window."""
        chunk = None
        if type(msg) is Insert:
            signal = signal_from_row(msg.new)
            if signal is not None:
                log.info("signal_received", id=signal.id, type=signal.type, lsn=format_lsn(wal_start))
                chunk = self._incremental.on_signal(signal)
        elif type(msg) is Delete and msg.old:
            chunk = self._incremental.on_signal_deleted(msg.old[0])
        if chunk is not None:
            self._snapshot_rows(chunk, wal_start, last_commit_lsn, send)

    def _snapshot_rows(self, chunk: ChunkRows, lsn: int, last_commit_lsn: int | None,
                       send: Callable[[Record], None]) -> None:
        """A closed window's rows, right before the watermark row's own event (after its transaction's BEGIN)."""
        source = SourceInfo.read_now(lsn, last_commit_lsn, snapshot="incremental", lsn_null=True)
        create, unwrap = chunk.encoder.create, self._unwrap
        for values in chunk.rows:
            for record in create(values, source, None, "r"):
                sent = unwrap(record) if unwrap is not None else record
                if sent is not None:
                    send(sent)
        self._stats.events += len(chunk.rows)
