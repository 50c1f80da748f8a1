"""Replay captured pgoutput frames through cdcd's real ``StreamingSession``, without I/O.

The replication connection hands out prepared XLogData frames (parsed by
``cdcd.wire.frames.parse_copy_data`` as the real one does), the catalog returns the
captured ``TableInfo``, and the sink only counts. What is left is exactly the
per-event Python work between the socket and ``Producer.produce``: frame
parsing, pgoutput decoding, value conversion, envelope building, bookkeeping.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from typing import Any

from cdcd import config as config_mod
from cdcd.delivery.sinks import CommitsAtOnce
from cdcd.delivery.tracker import LsnTracker
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.pipeline import Stats, StreamingSession
from cdcd.session.build import SessionStart, Surfaces, build_parts
from cdcd.source.tables import TableInfo


class _Repl:
    def __init__(self, frames: list[bytes], stop: threading.Event) -> None:
        self._frames = iter(frames)
        self._stop = stop

    def read_data(self, timeout: float, wake: int | None = None) -> Any:
        frame = next(self._frames, None)
        if frame is None:
            self._stop.set()
        return frame

    def send_status(self, write_lsn: int, flush_lsn: int, *, reply: bool = False) -> None:
        pass


class _Catalog:
    def __init__(self, table: TableInfo) -> None:
        self.table = table
        self.conn = None

    def table_info(self, relation: Any) -> TableInfo:
        return self.table


class CountingSink(CommitsAtOnce):
    """Counts records and bytes; a "commit" is free and done when it returns."""

    def __init__(self) -> None:
        self.records = 0
        self.nbytes = 0
        self._open = False

    @property
    def in_transaction(self) -> bool:
        return self._open

    def start(self) -> None:
        pass

    def send(self, record: Any) -> None:
        self._open = True
        self.records += 1
        self.nbytes += len(record.value or b"")

    def commit(self, timeout_s: float | None = None) -> None:
        self._open = False

    def abort(self) -> None:
        self._open = False

    def poll(self) -> None:
        pass

    def close(self) -> None:
        pass


def _config() -> Any:
    return config_mod.load(env={}, overrides={
        "dsn": "host=replay", "slot_name": "replay", "publication_name": "replay", "sink": "stdout",
        "topic_prefix": "bench", "log_level": "warning"})


def replay_once(frames: list[bytes], table: TableInfo, sink: Any | None = None) -> tuple[float, Any]:
    """Seconds to push ``frames`` through a fresh session; returns (seconds, sink)."""
    cfg = _config()
    stop = threading.Event()
    metrics = Metrics(process_metrics=False)
    sink = sink if sink is not None else CountingSink()
    surfaces = Surfaces(Stats(), metrics, Health(require_kafka=False, metrics=metrics))
    session = StreamingSession(build_parts(cfg, SessionStart("bench"), _Repl(frames, stop),  # type: ignore[arg-type]
                                           _Catalog(table), sink, LsnTracker(0), surfaces,  # type: ignore[arg-type]
                                           offsets=None))
    gc.collect()
    started = time.perf_counter()
    session.run(stop)
    return time.perf_counter() - started, sink


def replay(frames: list[bytes], table: TableInfo, events: int, repeat: int) -> dict[str, float]:
    """µs per event, median and min of ``repeat`` replays (after one warm-up), and the records produced."""
    replay_once(frames[: len(frames) // 10], table)
    runs = [replay_once(frames, table) for _ in range(repeat)]
    times = [seconds / events * 1e6 for seconds, _ in runs]
    return {"median": statistics.median(times), "min": min(times), "records": runs[0][1].records}
