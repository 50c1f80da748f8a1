"""Producing a snapshot: reader rows → ``op: "r"`` envelopes → Kafka transactions.

Rows go out in Kafka transactions of ``max.batch.events``; each carries the
offsets record with ``snapshot_completed`` false, the last one true. A run
that stops or fails midway leaves a false marker behind, so the next start
knows the snapshot is unfinished and takes it again (consumers may see some
``r`` events twice then, as with Debezium; never a gap).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import structlog

from cdcd.debezium.envelope import EnvelopeOptions, TableEncoder
from cdcd.debezium.transforms.unwrap import Unwrapper
from cdcd.delivery.offsets import OffsetStore, SourceOffset
from cdcd.delivery.sinks import Sink
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.snapshot._reader import SnapshotReader

log = structlog.get_logger("cdcd.snapshot")


def produce_snapshot(reader: SnapshotReader, sink: Sink, options: EnvelopeOptions, *,
                     offsets: OffsetStore | None, offset_lsn: int, system_id: str | None,
                     batch_events: int, stop: threading.Event, metrics: Metrics, health: Health,
                     unwrap: Unwrapper | None = None) -> bool:
    """Send every row of ``reader``; True when the snapshot completed and was committed."""
    encoders: dict[str, TableEncoder] = {}
    counters = {}
    pending = 0
    rows = 0
    started = time.monotonic()

    def commit(completed: bool) -> None:
        if offsets is not None:
            sink.send(offsets.record(SourceOffset(offset_lsn, reader.txid, reader.ts_us, system_id,
                                                  snapshot_completed=completed)))
        sink.commit()

    for row in reader:
        if stop.is_set():
            sink.abort()
            log.warning("snapshot_interrupted", rows=rows)
            return False
        table = row.table
        name = table.qualified_name
        encoder = encoders.get(name)
        if encoder is None:
            encoder = encoders[name] = TableEncoder(table, replace(options, snapshot_reads=True))
            counters[name] = metrics.snapshot_counter(name)
        for record in encoder.create(row.values, reader.source(row), None, "r"):
            if unwrap is not None:
                unwrapped = unwrap(record)
                if unwrapped is None:
                    continue
                record = unwrapped
            sink.send(record)
        counters[name].inc()
        rows += 1
        pending += 1
        if pending >= batch_events:
            commit(False)
            pending = 0
            health.loop_tick()
    commit(True)
    log.info("snapshot_completed", rows=rows, tables=len(encoders),
             duration_ms=round((time.monotonic() - started) * 1000, 1))
    return True
