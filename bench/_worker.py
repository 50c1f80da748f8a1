"""One cdcd run in its own process, for the benchmark: what it did and what it cost.

    python3 bench/_worker.py '<json spec>'

Running cdcd in a child process keeps the benchmark's own work (the writer, the
read_committed consumer, JSON parsing) off cdcd's interpreter and GIL, and makes
CPU time and peak RSS the cdcd run's alone. The spec names the DSN, slot, sink,
bootstrap servers and topic prefix, and either ``marks`` (a backlog run: note time
and CPU as the committed LSN passes each mark, stop at the last; ``end_lsn`` is one
mark) or nothing (a live run: stop on ``stop`` or EOF on stdin; ``query`` prints
progress). ``cprofile``: a path for the daemon thread's cProfile stats.

Lines on stdout, one JSON object each: ``{"ready": pid}`` after the imports (with
``"wait_go"`` the worker then waits for ``go`` on stdin, so a profiler can attach),
``{"streaming": true}``, answers to ``query``, and the result:

``elapsed_s``        streaming → committed LSN ≥ the last mark (backlog runs)
``marks``            ``[seconds, cpu_process_s, cpu_thread_s]`` when each mark was passed
``cpu_process_s``    process CPU time over that window (all threads: cdcd + librdkafka)
``cpu_thread_s``     the daemon thread's CPU time over that window
``maxrss_kb``        peak RSS of the process (``getrusage``)
``rss``              ``[seconds, bytes]`` every ``rss_interval_s``
``commit_latency``   ``[commit_ts_us, µs]`` per PostgreSQL transaction: from its commit
                     timestamp to the sink commit that made it durable (``"latency": true``)
``latency_histogram`` ``[µs bucket, count]`` instead (``"latency": "bounded"``)
``gc_full_ms``       each full (oldest-generation) garbage collection while streaming, ms: the
                     streaming thread waits it out when it is the one that triggered it
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if os.environ.get("CDCD_BENCH_PATH"):  # another build of the package, e.g. compiled with mypyc
    sys.path.insert(0, os.environ["CDCD_BENCH_PATH"])

import cdcd.daemon as daemon_module  # noqa: E402
from cdcd import config as config_mod  # noqa: E402
from cdcd.daemon import Daemon  # noqa: E402
from cdcd.delivery.offsets import OffsetRecord  # noqa: E402
from cdcd.delivery.sinks.stdout import StdoutSink  # noqa: E402
from cdcd.delivery.tracker import LsnTracker  # noqa: E402
from cdcd.ops import logs  # noqa: E402
from cdcd.ops.metrics import Metrics  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


class LatencyMetrics(Metrics):
    """Stamps each PostgreSQL transaction with the time its sink commit returned.

    ``samples`` keeps ``(commit_ts_us, µs)`` per transaction and ``arrivals`` the same for
    the moment cdcd processed the transaction's Commit (so the split shows how late WAL
    reached cdcd's loop and how long the Kafka commit took after that); with ``bounded`` (long
    runs whose RSS is watched) only a histogram of 0.1 ms buckets (10 ms above 100 ms)
    is kept, so the benchmark's own bookkeeping does not grow with the run.
    """

    def __init__(self, bounded: bool = False) -> None:
        super().__init__(process_metrics=False)
        self.bounded = bounded
        self.pending: list[tuple[float, int]] = []
        """(monotonic time processed, commit_ts_us) of transactions not yet in a returned commit."""
        self.samples: list[tuple[int, int]] = []
        self.arrivals: list[tuple[int, int]] = []
        self.commits: list[tuple[int, int]] = []
        """(wall-clock µs when it returned, µs it took) per sink commit."""
        self.histogram: dict[int, int] = {}
        self.count = 0

    def transaction_processed(self, commit_ts_us: int, now: float | None = None) -> None:
        super().transaction_processed(commit_ts_us, now)
        self.pending.append((time.monotonic(), commit_ts_us))
        if not self.bounded:
            self.arrivals.append((commit_ts_us, time.time_ns() // 1000 - commit_ts_us))

    def kafka_committed(self, commit_s: float, oldest_record_age_s: float | None = None) -> None:
        super().kafka_committed(commit_s, oldest_record_age_s)
        now_us = time.time_ns() // 1000
        if not self.bounded:
            self.commits.append((now_us, int(commit_s * 1e6)))
        # Transactions processed while this commit ran belong to the next one (the commit overlaps them).
        started = time.monotonic() - commit_s
        cut = 0
        while cut < len(self.pending) and self.pending[cut][0] <= started:
            cut += 1
        done = [ts for _, ts in self.pending[:cut]]
        del self.pending[:cut]
        self.count += len(done)
        if self.bounded:
            hist = self.histogram
            for ts in done:
                lat = now_us - ts
                key = lat // 100 * 100 if lat < 100_000 else lat // 10_000 * 10_000
                hist[key] = hist.get(key, 0) + 1
        else:
            self.samples.extend((ts, now_us - ts) for ts in done)


def _marked_tracker() -> type | None:
    """None when ``LsnTracker`` is compiled (mypyc): an interpreted class cannot extend it."""
    import cdcd.delivery.tracker

    if not str(cdcd.delivery.tracker.__file__).endswith(".py"):
        return None

    class MarkedTracker(LsnTracker):
        """Notes time and CPU, in the daemon thread, the moment ``committed`` passes each mark.

        Exact to the sink commit, and no polling thread competing for the GIL.
        """

        __slots__ = ()
        marks: list[int] = []  # class attributes: one tracker per worker process
        passed: list[tuple[float, float, float]] = []
        origin: tuple[float, float, float] | None = None
        done = threading.Event()
        lock = threading.Lock()

        def check(self) -> None:
            cls = MarkedTracker
            if cls.origin is None or not cls.marks:
                return
            with cls.lock:
                started, cpu0, tcpu0 = cls.origin
                while cls.marks and self.committed >= cls.marks[0]:
                    cls.marks.pop(0)
                    cls.passed.append((time.perf_counter() - started, time.process_time() - cpu0,
                                       time.thread_time() - tcpu0))
                    if not cls.marks:
                        cls.done.set()

        # Every way ``committed`` moves.
        def commit_succeeded(self) -> None:
            super().commit_succeeded()
            self.check()

        def transaction_ended(self, end_lsn: int) -> None:
            super().transaction_ended(end_lsn)
            self.check()

        def message_ended(self, end_lsn: int) -> None:
            super().message_ended(end_lsn)
            self.check()

        def keepalive(self, wal_end: int) -> None:
            super().keepalive(wal_end)
            self.check()
    return MarkedTracker


MarkedTracker: Any = _marked_tracker()


class _Counting:
    """Counts what reaches the Kafka sink after the key/value converters (offsets records excluded)."""

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0

    def factory(self, config: Any) -> Any:
        from cdcd.delivery.sinks.converting import ConvertingSink

        sink = daemon_module.make_sink(config)
        inner = sink.sink if isinstance(sink, ConvertingSink) else sink
        send = inner.send

        def counting_send(record: Any) -> None:
            if not isinstance(record, OffsetRecord):
                self.records += 1
                self.bytes += len(record.key or b"") + len(record.value or b"")
            send(record)
        inner.send = counting_send
        return sink


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class FullCollections:
    """The duration of each full garbage collection once ``armed`` (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.armed = False
        self.ms: list[float] = []
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if not self.armed or info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.ms.append(round((time.perf_counter() - self._started) * 1000, 3))


def thread_cpu(thread: threading.Thread) -> float:
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def main() -> int:
    spec = json.loads(sys.argv[1])
    logs.configure("warning", "json")
    # CDCD_* settings of the benchmark's own environment apply too (e.g. CDCD_COMMIT_OVERLAP).
    env = {k: v for k, v in os.environ.items() if k.startswith("CDCD_") and not k.startswith(("CDCD_BENCH", "CDCD_TEST"))}
    cfg = config_mod.load(env={**env, **spec.get("env", {})}, overrides={
        "dsn": spec["dsn"], "slot_name": spec["slot"], "publication_name": spec.get("publication", "bench"),
        "sink": spec["sink"], "bootstrap_servers": spec["bootstrap"], "topic_prefix": spec["topic_prefix"],
        "log_level": "warning", **spec.get("overrides", {})})
    kwargs: dict[str, Any] = {}
    devnull = None
    if spec["sink"] == "stdout":
        devnull = open(os.devnull, "wb")  # noqa: SIM115 - the process ends with the run
        kwargs["sink_factory"] = lambda _c: StdoutSink(devnull)
    counter = None
    if spec.get("count_bytes"):
        counter = _Counting()
        kwargs["sink_factory"] = counter.factory
    metrics = LatencyMetrics(spec["latency"] == "bounded") if spec.get("latency") else None
    if metrics is not None:
        kwargs["metrics"] = metrics
    emit({"ready": os.getpid()})
    if spec.get("wait_go"):
        sys.stdin.readline()

    marks: list[int] = spec.get("marks") or ([spec["end_lsn"]] if spec.get("end_lsn") is not None else [])
    if MarkedTracker is not None:
        MarkedTracker.marks = list(marks)
        daemon_module.LsnTracker = MarkedTracker
    daemon = Daemon(cfg, **kwargs)
    collections = FullCollections()
    rss: list[tuple[float, int]] = []
    t0 = time.monotonic()
    interval = float(spec.get("rss_interval_s", 0))
    done = threading.Event()

    def sample_rss() -> None:
        while not done.wait(interval):
            rss.append((round(time.monotonic() - t0, 3), rss_bytes()))

    if interval > 0:
        threading.Thread(target=sample_rss, daemon=True).start()
    target = daemon.run
    if spec.get("cprofile"):
        import cProfile

        profiler = cProfile.Profile()

        def target() -> None:
            profiler.runcall(daemon.run)
            profiler.dump_stats(spec["cprofile"])
    thread = threading.Thread(target=target, name="cdcd", daemon=True)
    thread.start()
    deadline = time.monotonic() + float(spec.get("timeout_s", 600))
    while not daemon.stats.streaming:
        if not thread.is_alive() or time.monotonic() > deadline:
            emit({"error": "cdcd stopped before streaming (see the worker log)"})
            return 1
        time.sleep(0.001)
    emit({"streaming": True})
    collections.armed = True
    started, cpu0, tcpu0 = time.perf_counter(), time.process_time(), thread_cpu(thread)
    at_marks: list[tuple[float, float, float]] = []
    if marks:
        if MarkedTracker is not None and isinstance(daemon.tracker, MarkedTracker):
            MarkedTracker.origin = (started, cpu0, tcpu0)
            daemon.tracker.check()  # marks passed before the origin was set
            while not MarkedTracker.done.wait(0.2):
                if not thread.is_alive() or time.monotonic() > deadline:
                    emit({"error": "cdcd stopped before reaching the end of the workload"})
                    return 1
            at_marks = MarkedTracker.passed
        else:  # the daemon no longer builds its tracker through cdcd.daemon.LsnTracker: poll
            for mark in marks:
                while daemon.tracker is None or daemon.tracker.committed < mark:
                    time.sleep(0.002)
                    if not thread.is_alive() or time.monotonic() > deadline:
                        emit({"error": "cdcd stopped before reaching the end of the workload"})
                        return 1
                at_marks.append((time.perf_counter() - started, time.process_time() - cpu0,
                                 thread_cpu(thread) - tcpu0))
        elapsed, cpu, tcpu = at_marks[-1]
    else:
        for line in sys.stdin:
            if line.strip() == "query":
                emit({"events": daemon.stats.events, "transactions": daemon.stats.transactions,
                      "acked": metrics.count if metrics else None})
            else:
                break
        elapsed, cpu, tcpu = time.perf_counter() - started, time.process_time() - cpu0, thread_cpu(thread) - tcpu0
    events = daemon.stats.events
    collections.armed = False
    daemon.stop.set()
    thread.join(60)
    done.set()
    if devnull is not None:
        devnull.close()
    emit({
        "elapsed_s": elapsed, "events": events, "transactions": daemon.stats.transactions,
        "kafka_commits": daemon.stats.kafka_commits,
        "cpu_process_s": cpu, "cpu_thread_s": tcpu,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss": rss, "commit_latency": metrics.samples if metrics else [], "marks": at_marks,
        "arrival_latency": metrics.arrivals if metrics else [],
        "commit_durations": metrics.commits if metrics else [],
        "latency_histogram": sorted(metrics.histogram.items()) if metrics else [],
        "gc_full_ms": collections.ms,
        **({"records_out": counter.records, "bytes_out": counter.bytes} if counter is not None else {}),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
