"""Incremental snapshots: tables read in chunks while the stream goes on (Debezium's watermarks).

An ``execute-snapshot`` signal names tables; each is read by primary key in
chunks of ``incremental.snapshot.chunk.size`` rows. For one chunk::

    INSERT <chunk>-open  (snapshot-window-open)  into the signal table
    SELECT the next rows after the last key sent, up to the table's maximum key
    INSERT <chunk>-close (snapshot-window-close)    (insert_delete: DELETE <chunk>-open)

The stream then carries both watermarks where they committed. While the
window is open, any change to a key of the chunk drops that row from the
window: the streamed event is at least as new as the row the SELECT saw, and
the consumer gets it in stream order. At the close watermark the rows left
are emitted as ``op: "r"`` events with ``source.snapshot`` = ``incremental``
and the next chunk is read. So a snapshot row never follows a newer change
of its key, and the stream is never paused.

The progress (tables left, last key sent, maximum key) travels in every
offsets record, in the same Kafka transaction as the rows it counts: after a
restart the snapshot goes on with a fresh chunk after the last key Kafka
holds, and watermarks of chunks from before the restart are ignored
(``cdcd.snapshot.incremental_state``).

Just over 400 lines: signals, windows and chunk reads all act on one state
machine (``IncrementalSnapshot``); the SQL of a chunk is ``cdcd.snapshot._chunks``.
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import structlog

from cdcd.config import Config
from cdcd.debezium.envelope import EnvelopeOptions, TableEncoder
from cdcd.decode.messages import Delete, Insert, Relation, TupleData, Update
from cdcd.errors import ConfigError, SourceError, SourceUnavailable
from cdcd.ops.metrics import Metrics
from cdcd.snapshot._chunks import ChunkSource, ChunkTable, TableUnusable
from cdcd.snapshot.incremental_state import IncrementalState
from cdcd.source.signal_table import (
    EXECUTE_SNAPSHOT,
    LOG,
    PAUSE_SNAPSHOT,
    RESUME_SNAPSHOT,
    STOP_SNAPSHOT,
    WINDOW_CLOSE,
    WINDOW_OPEN,
    Signal,
    SignalError,
    parse_snapshot_request,
    parse_stop_request,
    signal_table_name,
)
from cdcd.source.tables import TableInfo

log = structlog.get_logger("cdcd.snapshot.incremental")

INCREMENTAL: Final = "incremental"
STRATEGIES: Final = ("insert_insert", "insert_delete")

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ChunkRows:
    """Rows left in a closed window: encode each with ``encoder.create(values, source, None, "r")``."""

    table: TableInfo
    encoder: TableEncoder
    rows: list[TupleData]


class IncrementalSnapshot:
    """The incremental snapshot of one streaming session; driven by the pipeline's signal rows."""

    def __init__(self, dsn: str, signal_table: str, *, publication: str, accept: Callable[[str], bool],
                 options: EnvelopeOptions, metrics: Metrics, chunk_size: int = 1024,
                 strategy: str = "insert_insert", state: IncrementalState | None = None) -> None:
        if chunk_size < 1:
            raise ConfigError(f"incremental.snapshot.chunk.size={chunk_size}: use at least 1 (Debezium's default "
                              "is 1024)")
        if strategy not in STRATEGIES:
            raise ConfigError(f"incremental.snapshot.watermarking.strategy={strategy!r}: use one of "
                              f"{', '.join(STRATEGIES)}")
        self.signal_table = signal_table_name(signal_table)
        self.accept = accept
        self.metrics = metrics
        self.chunk_size = chunk_size
        self.strategy = strategy
        self.state = state or IncrementalState()
        self.dirty = False
        """The state changed since the last offsets record: the next Kafka commit must carry one."""
        self.window_open = False
        self.table_oid: int | None = None
        """Relation OID of the table being read: the stream's changes to it are checked against the window."""
        self._chunk_id: str | None = None
        self._window: dict[Key, TupleData] = {}
        self._chunk_end: list[str | None] | None = None
        self._chunk_rows = 0
        self._table: ChunkTable | None = None
        self._stream_keys: dict[int, tuple[Relation, tuple[int, ...] | None]] = {}
        self.source = ChunkSource(dsn, signal_table, publication, options)
        self._gauges()

    # -- the pipeline's calls ----------------------------------------------------------------

    def start(self) -> None:
        """At the start of a session: a snapshot found in the offsets goes on with a fresh chunk."""
        if self.state.running:
            log.info("incremental_snapshot_resuming", tables=self.state.tables, last_key=self.state.last_key,
                     paused=self.state.paused)
            self._read_chunk()

    def on_signal(self, signal: Signal) -> ChunkRows | None:
        """Carry out one signal row; the rows to emit now when it closed a window."""
        try:
            if signal.type == WINDOW_OPEN:
                if self._chunk_id is not None and signal.id == f"{self._chunk_id}-open":
                    self.window_open = True
                return None
            if signal.type == WINDOW_CLOSE:
                if self._chunk_id is not None and signal.id == f"{self._chunk_id}-close":
                    return self._close_window()
                return None
            if signal.type == EXECUTE_SNAPSHOT:
                self._execute(signal)
            elif signal.type == STOP_SNAPSHOT:
                self._stop(signal)
            elif signal.type == PAUSE_SNAPSHOT:
                self._pause()
            elif signal.type == RESUME_SNAPSHOT:
                self._resume()
            elif signal.type == LOG:
                log.info("signal_log", id=signal.id, message=signal.document().get("message"))
            else:
                log.warning("signal_unknown", id=signal.id, type=signal.type,
                            hint="cdcd knows execute-snapshot, stop-snapshot, pause-snapshot, resume-snapshot "
                                 "and log")
        except SignalError as exc:
            log.warning("signal_invalid", id=signal.id, type=signal.type, error=str(exc))
            self.metrics.error("signal")
        return None

    def on_signal_deleted(self, signal_id: object) -> ChunkRows | None:
        """insert_delete closes a window by deleting its open watermark."""
        if self.strategy == "insert_delete" and self._chunk_id is not None and signal_id == f"{self._chunk_id}-open":
            return self._close_window()
        return None

    def deduplicate(self, msg: Insert | Update | Delete) -> None:
        """A streamed change to the table being read, while the window is open: its keys leave the window."""
        positions = self._positions(msg.relation)
        if positions is None:
            return
        window = self._window
        if type(msg) is not Delete:
            new = msg.new  # type: ignore[union-attr]
            window.pop(tuple([new[i] for i in positions]), None)
        old = msg.old if type(msg) is not Insert else None  # type: ignore[union-attr]
        if old is not None:
            window.pop(tuple([old[i] for i in positions]), None)

    def relation_changed(self, oid: int) -> None:
        self._stream_keys.pop(oid, None)

    def truncated(self, oid: int) -> None:
        """The rows in the window are gone: emitting them after the truncate would bring them back."""
        if oid == self.table_oid:
            self._window.clear()

    def committed(self) -> None:
        """The last state was written to Kafka."""
        self.dirty = False

    def close(self) -> None:
        self.source.close()

    # -- signals -----------------------------------------------------------------------------

    def _execute(self, signal: Signal) -> None:
        request = parse_snapshot_request(signal)
        if request.kind == "blocking":
            log.warning("snapshot_blocking_as_incremental", id=signal.id,
                        detail="cdcd reads a blocking snapshot incrementally: same rows, the stream is not paused")
        if request.surrogate_key:
            log.warning("snapshot_surrogate_key_ignored", id=signal.id, surrogate_key=request.surrogate_key,
                        detail="cdcd reads chunks by primary key")
        try:
            captured = self.source.captured_tables(self.accept)
        except psycopg.OperationalError as exc:
            self.close()
            raise SourceUnavailable(f"incremental snapshot: connection to PostgreSQL lost: {exc}") from exc
        names: list[str] = []
        for pattern in request.data_collections:
            matched = [t for t in captured if t == pattern or _fullmatch(pattern, t)]
            if not matched:
                log.warning("snapshot_table_not_captured", id=signal.id, data_collection=pattern,
                            hint="the table must be in the publication and pass table.include.list / "
                                 "table.exclude.list (and not be the signal or an outbox table)")
            names.extend(t for t in matched if t not in names)
        state = self.state
        was_running = state.running
        added = [n for n in names if n not in state.tables]
        for name in added:
            state.tables.append(name)
            condition = request.condition_for(name)
            if condition:
                state.conditions[name] = condition
        if not added:
            return
        if not was_running:
            state.correlation_id = signal.id
        self.dirty = True
        log.info("incremental_snapshot_requested", id=signal.id, tables=added, queued=state.tables,
                 chunk_size=self.chunk_size)
        self._gauges()
        if not was_running:
            self._read_chunk()

    def _stop(self, signal: Signal) -> None:
        state = self.state
        if not state.running:
            log.warning("snapshot_stop_ignored", id=signal.id, detail="no incremental snapshot is running")
            return
        names = parse_stop_request(signal)
        self.dirty = True
        if not names:
            log.info("incremental_snapshot_stopped", id=signal.id, tables=state.tables)
            state.tables.clear()
            state.next_table()
            self._abandon_window()
        else:
            current = state.tables[0]
            for pattern in names:
                for table in [t for t in state.tables if t == pattern or _fullmatch(pattern, t)]:
                    if table != current:
                        state.tables.remove(table)
                        state.conditions.pop(table, None)
            log.info("incremental_snapshot_tables_removed", id=signal.id, data_collections=list(names),
                     queued=state.tables)
            if any(current == p or _fullmatch(p, current) for p in names):
                state.next_table()
                self._abandon_window()
                self._read_chunk()
        self._gauges()

    def _pause(self) -> None:
        if self.state.running and not self.state.paused:
            self.state.paused = True
            self.dirty = True
            log.info("incremental_snapshot_paused", tables=self.state.tables, last_key=self.state.last_key)
            self._gauges()

    def _resume(self) -> None:
        if self.state.running and self.state.paused:
            self.state.paused = False
            self.dirty = True
            log.info("incremental_snapshot_resumed", tables=self.state.tables)
            self._gauges()
            if self._chunk_id is None:  # else the open window's close reads the next chunk
                self._read_chunk()

    # -- windows -----------------------------------------------------------------------------

    def _close_window(self) -> ChunkRows | None:
        table, rows = self._table, list(self._window.values())
        self._window.clear()
        self.window_open = False
        self._chunk_id = None
        chunk = None
        if self._chunk_end is not None and table is not None:
            log.debug("incremental_snapshot_window_closed", table=table.plan.name, rows=len(rows),
                      superseded=self._chunk_rows - len(rows))
            self.state.last_key = self._chunk_end
            self._chunk_end = None
            self.dirty = True
            if rows:
                chunk = ChunkRows(table.info, table.encoder, rows)
                self.metrics.incremental_rows.labels(table=table.plan.name).inc(len(rows))
        self._read_chunk()
        return chunk

    def _abandon_window(self) -> None:
        """Forget the window in flight: its watermarks will be ignored when they arrive."""
        self._window.clear()
        self.window_open = False
        self._chunk_id = None
        self._chunk_end = None
        self.table_oid = None

    def _read_chunk(self) -> None:
        """Open a window, read the next chunk into it, close it (both watermarks go through the WAL)."""
        state = self.state
        if not state.running or state.paused or self._chunk_id is not None:
            return
        try:
            self._chunk_id = str(uuid.uuid4())
            opened = _now()
            self.source.write_watermark(f"{self._chunk_id}-open", WINDOW_OPEN, f'{{"openWindowTimestamp":"{opened}"}}')
            while state.running:
                table = self._current()
                if table is None:
                    continue
                rows = self._select(table)
                if rows is None:
                    continue
                if not rows:
                    log.info("incremental_snapshot_table_completed", table=table.plan.name)
                    self._next_table()
                    continue
                self.table_oid = table.relation.oid
                key = table.key
                for row in rows:
                    self._window[key(row)] = row
                self._chunk_end = [rows[-1][i] for i in table.key_positions]  # type: ignore[misc]
                self._chunk_rows = len(self._window)
                log.debug("incremental_snapshot_chunk", table=table.plan.name, rows=len(rows),
                          chunk=self._chunk_id, last_key=self._chunk_end)
                break
            if not state.running:
                log.info("incremental_snapshot_completed")
                self.table_oid = None
                self._gauges()
            if self.strategy == "insert_delete":
                self.source.delete_watermark(f"{self._chunk_id}-open")
            else:
                self.source.write_watermark(f"{self._chunk_id}-close", WINDOW_CLOSE,
                            f'{{"openWindowTimestamp":"{opened}","closeWindowTimestamp":"{_now()}"}}')
        except psycopg.OperationalError as exc:
            self.close()
            raise SourceUnavailable(f"incremental snapshot: connection to PostgreSQL lost: {exc}") from exc
        except psycopg.Error as exc:
            raise SourceError(f"incremental snapshot: cannot write a watermark to the signal table "
                              f"{self.signal_table}: {str(exc).strip()} (it needs the columns id, type, data "
                              "and INSERT/DELETE rights for cdcd's user)") from exc

    def _current(self) -> ChunkTable | None:
        """The current table, described now; None when it was given up."""
        name = self.state.tables[0]
        try:
            self._table = self.source.describe(name, self._table)
        except TableUnusable as exc:
            log.warning("incremental_snapshot_table_skipped", table=name, error=str(exc))
            self._next_table()
            return None
        return self._table

    def _select(self, table: ChunkTable) -> list[TupleData] | None:
        """The next chunk (in key order); None when the table was given up or is empty."""
        state = self.state
        name = table.plan.name
        condition = state.conditions.get(name)
        try:
            if state.max_key is None:
                state.max_key = self.source.max_key(table, condition)
                if state.max_key is None:
                    log.info("incremental_snapshot_table_completed", table=name, rows=0)
                    self._next_table()
                    return None
                self.dirty = True
                log.info("incremental_snapshot_table_started", table=name, max_key=state.max_key,
                         estimated_rows=table.plan.estimate)
            return self.source.chunk(table, state.last_key, state.max_key, condition, self.chunk_size)
        except (psycopg.errors.ProgrammingError, psycopg.errors.DataError) as exc:
            log.error("incremental_snapshot_table_failed", table=name, error=str(exc).strip(),
                      hint="check the additional-conditions filter of the execute-snapshot signal")
            self.metrics.error("incremental_snapshot")
            self._next_table()
            return None

    def _next_table(self) -> None:
        self.state.next_table()
        self._table = None
        self.table_oid = None
        self.dirty = True
        self._gauges()

    def _positions(self, relation: Relation) -> tuple[int, ...] | None:
        """Where the key columns are in the stream's tuples for ``relation``."""
        cached = self._stream_keys.get(relation.oid)
        if cached is not None and cached[0] is relation:
            return cached[1]
        table = self._table
        positions = None
        if table is not None:
            names = [c.name for c in relation.columns]
            if all(k in names for k in table.info.primary_key):
                positions = tuple(names.index(k) for k in table.info.primary_key)
        self._stream_keys[relation.oid] = (relation, positions)
        return positions

    def _gauges(self) -> None:
        self.metrics.incremental_tables.set(len(self.state.tables))
        self.metrics.incremental_paused.set(1 if self.state.paused else 0)


def _fullmatch(pattern: str, name: str) -> bool:
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat().replace("+00:00", "Z")


def incremental_snapshot(config: Config, options: EnvelopeOptions, metrics: Metrics, accept: Callable[[str], bool],
                         stored: dict[str, Any] | None) -> IncrementalSnapshot | None:
    """The session's incremental snapshot, resumed from the offsets; None without a signal table."""
    if not config.signal_data_collection:
        return None
    return IncrementalSnapshot(
        config.dsn, signal_table_name(config.signal_data_collection), publication=config.publication_name,
        accept=accept, options=options, metrics=metrics, chunk_size=config.incremental_snapshot_chunk_size,
        strategy=config.incremental_snapshot_watermarking_strategy, state=IncrementalState.from_doc(stored))
