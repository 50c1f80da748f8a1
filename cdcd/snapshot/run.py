"""Producing a snapshot: reader rows → ``op: "r"`` envelopes → Kafka transactions.

The records are encoded in the reader's worker threads (each worker builds
its own ``TableEncoder`` per table, nothing mutable is shared), all with the
marker ``true``; the consumer thread only rewrites the few rows whose marker
differs (first/last of a table, of the snapshot), applies the SMTs and sends.

Rows go out in Kafka transactions of ``max.batch.events``; each carries the
offsets record with ``snapshot_completed`` false, the last one true. A run
that stops or fails midway leaves a false marker behind, so the next start
knows the snapshot is unfinished and takes it again (consumers may see some
``r`` events twice then, as with Debezium; never a gap).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import structlog

from cdcd.debezium.envelope import EnvelopeOptions, Record, TableEncoder
from cdcd.debezium.transforms.unwrap import Unwrapper
from cdcd.delivery.offsets import OffsetStore, SourceOffset
from cdcd.delivery.sinks import Sink
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.snapshot._flags import TRUE
from cdcd.snapshot._reader import Convert, SnapshotReader, rows_of_results
from cdcd.source.tables import TableInfo

log = structlog.get_logger("cdcd.snapshot")

_TRUE_MARK = b',"snapshot":"true"'


def record_encoder(reader: SnapshotReader, options: EnvelopeOptions) -> Callable[[TableInfo], Convert]:
    """The reader's ``prepare``: per table, a fresh encoder turning rows of a fetched result into records."""
    options = replace(options, snapshot_reads=True)

    def prepare(table: TableInfo) -> Convert:
        encoder = TableEncoder(table, options)  # one per worker and table: owned by that thread
        source = reader.source_for(TRUE)
        chunks = encoder.snapshot_chunks(source)
        if chunks is not None:  # the compiled core: C, without the GIL
            return lambda result, start, stop: chunks(result.pgresult_ptr, start, stop)  # type: ignore[misc]
        create = encoder.create
        rows = rows_of_results()
        return lambda result, start, stop: [create(row, source, None, "r")[0] for row in rows(result, start, stop)]

    return prepare


def with_marker(record: Record, flag: str) -> Record:
    """``record`` (encoded with ``source.snapshot`` = ``true``) with the marker ``flag`` instead.

    The source block follows ``after`` in the value, and a JSON string cannot
    hold an unescaped quote, so the last ``,"snapshot":"true"`` is the source's.
    """
    if flag == TRUE or record.value is None:
        return record
    value = record.value
    at = value.rfind(_TRUE_MARK)
    if at < 0:
        raise ValueError("a snapshot record without its source.snapshot field")
    end = at + len(_TRUE_MARK)
    return record._replace(value=b"".join((value[:at], b',"snapshot":"', flag.encode(), b'"', value[end:])))


def produce_snapshot(reader: SnapshotReader, sink: Sink, options: EnvelopeOptions, *,
                     offsets: OffsetStore | None, offset_lsn: int, system_id: str | None,
                     batch_events: int, stop: threading.Event, metrics: Metrics, health: Health,
                     unwrap: Unwrapper | None = None) -> bool:
    """Send every row of ``reader``; True when the snapshot completed and was committed."""
    counts: Counter[str] = Counter()
    pending = 0
    rows = 0
    started = time.monotonic()
    send = sink.send

    def commit(completed: bool) -> None:
        if offsets is not None:
            send(offsets.record(SourceOffset(offset_lsn, reader.txid, reader.ts_us, system_id,
                                             snapshot_completed=completed)))
        sink.commit()
        for name, count in counts.items():
            metrics.snapshot_counter(name).inc(count)
        counts.clear()

    current: TableInfo | None = None
    name = ""
    for table, record, flag in reader.items(record_encoder(reader, options)):
        if stop.is_set():
            sink.abort()
            log.warning("snapshot_interrupted", rows=rows)
            return False
        if table is not current:
            current, name = table, table.qualified_name
        if flag != TRUE:
            record = with_marker(record, flag)
        if unwrap is not None:
            record = unwrap(record)
        if record is not None:
            send(record)
        counts[name] += 1
        rows += 1
        pending += 1
        if pending >= batch_events:
            commit(False)
            pending = 0
            health.loop_tick()
    commit(True)
    log.info("snapshot_completed", rows=rows, tables=len(reader.plans),
             duration_ms=round((time.monotonic() - started) * 1000, 1))
    return True
