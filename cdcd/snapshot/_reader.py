"""Reading the captured tables in one snapshot, in parallel, for one consumer.

``degree`` worker threads (``snapshot.max.threads``) each own a connection
whose transaction imported the same snapshot; they take tables in order (a big
table in ``degree`` parts of heap blocks, ``split_tables``) and read each
through a server-side cursor, ``fetch_size`` rows per FETCH. Rows
come back in the text format with pgoutput's session settings, undecoded, so
a snapshot value is exactly the string pgoutput sends for it. A worker also
turns each fetched result into the consumer's items with a per-table function
it builds itself (``items(prepare)``): the daemon encodes the Kafka records
there, so encoding runs on every worker thread, not in the consumer.

The consumer (the caller's thread: the Kafka sink is single-threaded) takes
chunks as they arrive, tables interleaved, each table's rows in order; the
first table's first row comes first and the last table's last row last, so
the ``first``/``last`` markers sit where Debezium puts them (``_flags``). A
worker may run ahead of the consumer by at most ``queue_chunks`` chunks (the
one being fetched included): memory is bounded by ``degree * queue_chunks *
fetch_size`` rows (plus one held-back row per table) whatever the table sizes.
No deadlock is possible: the consumer holds back chunks only while it waits
for the first table's first row, and the worker reading that table's first
part holds no other chunks.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cdcd.debezium.source_info import SourceInfo
from cdcd.decode.messages import TupleData
from cdcd.errors import CdcdError, SourceError, SourceUnavailable
from cdcd.native import compiled_text_rows
from cdcd.snapshot._flags import LAST, TRUE, marker
from cdcd.snapshot._tables import TablePart, TablePlan, lock_tables, plan_tables, relation_for, split_tables
from cdcd.source.catalog import Catalog
from cdcd.source.tables import TableInfo
from cdcd.wire.lsn import Lsn, format_lsn
from cdcd.wire.replication import SESSION_OPTIONS

log = structlog.get_logger("cdcd.snapshot")

DEFAULT_FETCH_SIZE: Final = 10240  # Debezium's snapshot.fetch.size default
DEFAULT_QUEUE_CHUNKS: Final = 2
SLICE_ROWS: Final = 1024
"""A fetched result is encoded and handed over this many rows at a time: an encoded record carries its
schema (kilobytes for a wide table), so whole 10240-row results would hold tens of MB per chunk and
run the workers out of the CPU caches."""

# pgoutput's text settings, plus: a worker waiting for the consumer is idle in
# its transaction, and a long FETCH is one statement: neither may time out.
_OPTIONS: Final = (f"{SESSION_OPTIONS} -c client_encoding=UTF8 "
                   "-c idle_in_transaction_session_timeout=0 -c statement_timeout=0")
_CURSOR: Final = "cdcd_snapshot"
_WAIT_S: Final = 0.1

ProgressCallback = Callable[[str, int, "int | None"], None]
"""``on_progress(table, rows_done, rows_estimated)``; rows_estimated is None when never analyzed."""


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One row of the snapshot: encode with ``TableEncoder(table).create(values, source, None, op="r")``."""

    table: TableInfo
    values: TupleData
    snapshot_flag: str
    """Debezium's ``source.snapshot``: first, first_in_data_collection, true, last_in_data_collection, last."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    items: list[Any]
    """One item per row, in the table's order (what the table's ``prepare`` function made)."""
    worker: int


Convert = Callable[[Any, int, int], list[Any]]
"""``convert(result, start, stop)``: rows ``start <= row < stop`` of a fetched ``PGresult`` (psycopg's
``cursor.pgresult``) as one item each."""
Prepare = Callable[[TableInfo], Convert]
"""``prepare(table)``, called in a worker thread once per table (part) it reads, gives its ``convert``."""


def _rows_of(table: TableInfo) -> Convert:
    return rows_of_results()


def rows_of_results() -> Convert:
    """``convert`` for text rows: each result read once (``text_rows``), then sliced."""
    last: list[Any] = [None, []]

    def convert(result: Any, start: int, stop: int) -> list[Any]:
        if last[0] is not result:
            last[0], last[1] = result, text_rows(result)
        rows: list[Any] = last[1]
        return rows if start == 0 and stop >= len(rows) else rows[start:stop]

    return convert


class _End:
    pass


class _Nothing:
    pass


class _Stopped(Exception):
    pass


_END: Final = _End()
_NOTHING: Final = _Nothing()


class SnapshotReader:
    """The rows of ``tables`` as one consistent snapshot.

    ``snapshot_name`` is the name ``create_slot_with_snapshot`` returned and
    ``consistent_point`` the slot's consistent point: the snapshot then holds
    exactly what the slot will not stream. With ``snapshot_name=None`` the
    reader takes a fresh snapshot and reports ``pg_current_wal_lsn()`` as its
    position (snapshot.mode=always / when_needed on an existing slot): the
    stream resumes from the slot's confirmed position, before the snapshot,
    so changes in between are both read here and streamed again (overlap, no gap).

    Use it as a context manager; ``open()`` (called by ``__enter__``) returns
    once every connection imported the snapshot — from then on the
    replication connection that exported it may run other commands.
    Iterating reads everything once and closes the connections at the end.
    """

    def __init__(
        self, dsn: str, snapshot_name: str | None, consistent_point: int | None, tables: Sequence[str], *,
        degree: int = 1, fetch_size: int = DEFAULT_FETCH_SIZE, queue_chunks: int = DEFAULT_QUEUE_CHUNKS,
        publication: str | None = None, on_progress: ProgressCallback | None = None, lock: bool = True,
    ) -> None:
        if snapshot_name is not None and consistent_point is None:
            raise ValueError("an exported snapshot needs the slot's consistent point")
        if degree < 1 or fetch_size < 1 or queue_chunks < 1:
            raise ValueError("degree, fetch_size and queue_chunks must be at least 1")
        self.dsn = dsn
        self.snapshot_name = snapshot_name
        self.tables = list(tables)
        self.degree = degree if self.tables else 1  # one table may be read in parts by every worker
        self.fetch_size = fetch_size
        self.queue_chunks = queue_chunks
        self.publication = publication
        self.on_progress = on_progress
        self.lock = lock
        self.lsn: int = consistent_point or 0
        """``source.lsn`` of every snapshot row: the consistent point (or the WAL position of a fresh snapshot)."""
        self.txid: int | None = None
        """``source.txId``: the snapshot transaction's id."""
        self.ts_us: int = 0
        """``source.ts_*``: the snapshot time, µs since the Unix epoch."""
        self.plans: list[TablePlan] = []
        self.parts: list[TablePart] = []
        """What the workers read, in order: every table whole, or in block ranges when ``degree > 1``."""
        self.peak_buffered_rows = 0
        self._conns: list[psycopg.Connection[Any]] = []
        self._threads: list[threading.Thread] = []
        self._permits: list[threading.Semaphore] = []
        self._queue: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        self._prepare: Prepare = _rows_of
        self._next = 0
        self._lock = threading.Lock()
        self._buffered_rows = 0
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._opened = False

    @property
    def buffer_limit_rows(self) -> int:
        """The most rows handed over at once and not yet consumed (besides each worker's fetched result)."""
        return self.degree * self.queue_chunks * min(self.fetch_size, SLICE_ROWS)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> SnapshotReader:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect ``degree`` times and import the snapshot in each; plan the tables."""
        if self._opened:
            return
        self._opened = True
        try:
            self._open()
        except psycopg.Error as exc:
            self.close()
            raise _source_error(exc, "opening the snapshot") from exc
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        name = self.snapshot_name
        first = self._connect()
        _begin(first, name)
        if name is None:
            # On a standby (PostgreSQL 16+) the snapshot sees what was replayed.
            row = first.execute("SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                                "ELSE pg_current_wal_lsn() END)::text, CASE WHEN %s THEN pg_export_snapshot() END",
                                (self.degree > 1,)).fetchone()
            assert row is not None
            self.lsn, name = int(Lsn.parse(str(row[0]))), row[1]
        # A standby cannot assign a transaction id: txId 0 there, as Debezium reports.
        row = first.execute("SELECT CASE WHEN pg_is_in_recovery() THEN 0 ELSE txid_current() END, "
                            "(extract(epoch FROM now()) * 1000000)::int8").fetchone()
        assert row is not None
        self.txid, self.ts_us = int(row[0]), int(row[1])
        for _ in range(1, self.degree):
            _begin(self._connect(), name)
        self.plans = plan_tables(first, self.tables, self.publication)
        if self.lock:
            lock_tables(first, self.plans)
        self.parts = split_tables(first, self.plans, self.degree)
        self._permits = [threading.Semaphore(self.queue_chunks) for _ in self._conns]
        log.info("snapshot_opened", snapshot=self.snapshot_name or "fresh", lsn=format_lsn(self.lsn),
                 txid=self.txid, tables=len(self.plans), degree=self.degree, fetch_size=self.fetch_size)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = connect_text(self.dsn)
        self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Stop the workers and end the snapshot transactions (idempotent)."""
        self._stop.set()
        for thread, conn in zip(self._threads, self._conns):
            thread.join(timeout=1.0)
            if thread.is_alive():
                try:
                    getattr(conn, "cancel_safe", conn.cancel)()  # a long FETCH: interrupt it
                except psycopg.Error:
                    pass
                thread.join()
        for conn in self._conns:
            try:
                conn.close()  # ends the read-only transaction
            except psycopg.Error:
                pass
        self._threads = []
        self._conns = []

    # -- consumer side ---------------------------------------------------------------------

    def source(self, row: SnapshotRow) -> SourceInfo:
        """The ``source`` block of a snapshot event (sequence ``[null, "<lsn>"]``)."""
        return self.source_for(row.snapshot_flag)

    def source_for(self, flag: str) -> SourceInfo:
        """The ``source`` block of a snapshot event whose marker is ``flag``."""
        return SourceInfo(ts_us=self.ts_us, txid=self.txid, lsn=self.lsn, last_commit_lsn=None, snapshot=flag)

    def __iter__(self) -> Iterator[SnapshotRow]:
        for table, values, flag in self.items(_rows_of):
            yield SnapshotRow(table, values, flag)

    def items(self, prepare: Prepare) -> Iterator[tuple[TableInfo, Any, str]]:
        """``(table, item, marker)`` for every row: items made by ``prepare`` in the workers.

        Tables interleave as their chunks arrive; each table's rows keep their
        order. Reads everything once and closes the connections at the end.
        """
        self.open()
        if self._threads or self._stop.is_set():
            raise RuntimeError("a SnapshotReader can be iterated only once")
        self._prepare = prepare
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"cdcd-snapshot-{i}", daemon=True)
                         for i in range(len(self._conns))]
        for thread in self._threads:
            thread.start()
        yield from self._ordered()
        log.info("snapshot_read", tables=len(self.plans), peak_buffered_rows=self.peak_buffered_rows)
        self.close()

    def _ordered(self) -> Iterator[tuple[TableInfo, Any, str]]:
        """The chunks in arrival order, markers decided as ``_flags`` does, the final row rewritten to ``last``.

        The markers are those of reading the tables one after the other (a
        table read in parts: its first row out is its first, its last row out
        its last). Each table holds back its latest row until the next chunk or
        its end says whether it is the table's last. Until the first table has
        emitted its first row (or turned out empty), other tables' chunks wait
        here, so ``first`` is the first row out. A table's last row waits until
        a later table has a row (else it may be the snapshot's last row), so
        the last row of the last non-empty table is the last row out.
        """
        n = len(self.plans)
        infos: list[TableInfo | None] = [None] * n
        held: list[Any] = [_NOTHING] * n
        started = [False] * n
        done = [0] * n
        waiting: deque[tuple[int, object]] = deque()
        tails: dict[int, tuple[TableInfo, Any, str]] = {}
        gate = n == 0
        finished = 0
        highest_started = -1
        out: tuple[TableInfo, Any, str] | None = None
        last_table = n - 1
        events = self._table_events()
        while finished < n:
            if gate and waiting:
                index, payload = waiting.popleft()
            else:
                index, payload = next(events)
                if not gate and index != 0:
                    waiting.append((index, payload))
                    continue
            if isinstance(payload, TableInfo):
                infos[index] = payload
                self._progress(self.plans[index], 0)
                continue
            table = infos[index]
            assert table is not None
            if payload is _END:
                finished += 1
                row = held[index]
                if row is not _NOTHING:
                    tail = (table, row, marker(index == 0 and not started[index], index == last_table,
                                               not started[index], True))
                    if highest_started > index:
                        if out is not None:
                            yield out
                        out = tail
                    else:  # might be the snapshot's last row: only a later table's row says it is not
                        tails[index] = tail
                if index == 0:
                    gate = True
                continue
            assert isinstance(payload, _Chunk)
            items = payload.items
            count = len(items)
            if count:
                if index > highest_started:
                    highest_started = index
                    for i in sorted(i for i in tails if i < index):
                        if out is not None:
                            yield out
                        out = tails.pop(i)
                row = held[index]
                if row is not _NOTHING:
                    if out is not None:
                        yield out
                    out = (table, row, marker(index == 0 and not started[index], False, not started[index], False))
                    started[index] = True
                    first = 0
                else:
                    first = 1
                    if count > 1:  # the table's first row, not its last
                        if out is not None:
                            yield out
                        out = (table, items[0], marker(index == 0, False, True, False))
                        started[index] = True
                    else:
                        first = 0
                stop = count - 1
                if first < stop:
                    if out is not None:
                        yield out
                    for k in range(first, stop - 1):
                        yield table, items[k], TRUE
                    out = (table, items[stop - 1], TRUE)
                held[index] = items[stop]
                if index == 0 and started[0]:
                    gate = True
            done[index] += count
            with self._lock:
                self._buffered_rows -= count
            self._permits[payload.worker].release()
            self._progress(self.plans[index], done[index])
        for i in sorted(tails):
            if out is not None:
                yield out
            out = tails[i]
        if out is not None:
            yield out[0], out[1], LAST

    def _table_events(self) -> Iterator[tuple[int, object]]:
        """``(table index, event)``: the parts' events as they arrive, one table description and end per table.

        The parts of a table interleave (each part's rows in block order), as
        Debezium's chunks of a table do: no part waits for another, so every
        worker keeps encoding and none holds chunks that wait.
        """
        remaining = [0] * len(self.plans)
        for part in self.parts:
            remaining[part.table] += 1
        described = [False] * len(self.plans)
        while True:
            index, payload = self._take()
            table = self.parts[index].table
            if isinstance(payload, TableInfo):
                if described[table]:
                    continue
                described[table] = True
            elif payload is _END:
                remaining[table] -= 1
                if remaining[table]:
                    continue
            yield table, payload

    def _progress(self, plan: TablePlan, done: int) -> None:
        if self.on_progress is not None:
            self.on_progress(plan.name, done, plan.estimate)

    def _take(self) -> tuple[int, object]:
        while True:
            try:
                item = self._queue.get(timeout=_WAIT_S)
            except queue.Empty:
                if self._failure is not None:
                    raise self._failure from None
                if self._stop.is_set():
                    raise SourceError("the snapshot was closed while it was being read") from None
                continue
            if isinstance(item[1], BaseException):
                raise item[1]
            return item

    # -- workers ---------------------------------------------------------------------------

    def _work(self, worker: int) -> None:
        conn = self._conns[worker]
        index = -1
        try:
            while not self._stop.is_set():
                with self._lock:
                    index = self._next
                    self._next += 1
                if index >= len(self.parts):
                    return
                self._read_table(conn, worker, index, self.parts[index])
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            error: BaseException = exc
            if isinstance(exc, psycopg.Error):
                error = _source_error(exc, f"reading {self.plans[self.parts[index].table].name}")
            if not isinstance(error, CdcdError):
                log.exception("snapshot_worker_failed")
            self._failure = error
            self._stop.set()
            self._queue.put((max(index, 0), error))

    def _read_table(self, conn: psycopg.Connection[Any], worker: int, index: int, part: TablePart) -> None:
        plan = self.plans[part.table]
        relation = relation_for(conn, plan.schema, plan.table, publication=self.publication, generated=True)
        table = Catalog(conn).table_info(relation)
        convert = self._prepare(table)
        put = self._queue.put
        put((index, table))
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DECLARE {} NO SCROLL CURSOR FOR {}").format(
                sql.Identifier(_CURSOR), plan.select(relation, part.blocks)))
            fetch = sql.SQL("FETCH FORWARD {} FROM {}").format(sql.Literal(self.fetch_size), sql.Identifier(_CURSOR))
            permits = self._permits[worker]
            while not self._stop.is_set():
                cur.execute(fetch)
                result = cur.pgresult
                rows = 0 if result is None else result.ntuples
                if not rows:
                    break
                for start in range(0, rows, SLICE_ROWS):
                    while not permits.acquire(timeout=_WAIT_S):
                        if self._stop.is_set():
                            raise _Stopped
                    items = convert(result, start, min(rows, start + SLICE_ROWS))
                    with self._lock:
                        self._buffered_rows += len(items)
                        self.peak_buffered_rows = max(self.peak_buffered_rows, self._buffered_rows)
                    put((index, _Chunk(items, worker)))
            if self._stop.is_set():
                raise _Stopped
            cur.execute(sql.SQL("CLOSE {}").format(sql.Identifier(_CURSOR)))
        put((index, _END))


def connect_text(dsn: str, application_name: str = "cdcd-snapshot") -> psycopg.Connection[Any]:
    """An autocommit connection whose text output is exactly pgoutput's (``text_rows`` reads it)."""
    params = conninfo_to_dict(dsn)
    options = params.get("options")
    params["options"] = f"{options} {_OPTIONS}" if options else _OPTIONS
    params.setdefault("application_name", application_name)
    try:
        return psycopg.connect(make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None}),
                               autocommit=True)
    except psycopg.OperationalError as exc:
        raise SourceUnavailable(f"cannot open a snapshot connection to PostgreSQL: {exc}") from exc


def _begin(conn: psycopg.Connection[Any], snapshot: str | None) -> None:
    """A read-only REPEATABLE READ transaction, in ``snapshot`` when given (before any query)."""
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if snapshot is not None:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    except psycopg.Error as exc:
        hint = ""
        if exc.sqlstate == "22023":
            hint = (" (the exported snapshot is gone: the replication connection that created the slot ran "
                    "another command or disconnected before every reader imported it; drop the slot and "
                    "create it again, or take a fresh snapshot)")
        if snapshot is None:
            raise _source_error(exc, "starting the snapshot transaction") from exc
        raise SourceError(f"cannot import snapshot {snapshot!r}: {str(exc).strip()}{hint}") from exc


def text_rows(result: Any) -> list[TupleData]:
    """The result's values as pgoutput sends them: the type's text output, NULL as None."""
    if result is None:
        return []
    fast = compiled_text_rows()
    if fast is not None and result.pgresult_ptr:
        return fast(result.pgresult_ptr)  # type: ignore[no-any-return]
    get = result.get_value
    columns = range(result.nfields)
    rows: list[TupleData] = []
    for r in range(result.ntuples):
        rows.append(tuple([None if (v := get(r, c)) is None else bytes(v).decode() for c in columns]))
    return rows


def _source_error(exc: psycopg.Error, doing: str) -> CdcdError:
    message = str(exc).strip()
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate in (None, "57P01", "57P02", "57P03"):
        return SourceUnavailable(f"snapshot connection lost while {doing}: {message} "
                                 "(the snapshot restarts from scratch)")
    return SourceError(f"snapshot failed while {doing}: {message} (SQLSTATE {exc.sqlstate})")
