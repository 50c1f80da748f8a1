"""The benchmark's moving parts: a throwaway PostgreSQL, the embedded broker, readers and writers.

``Bench`` owns the cluster and the broker. A *scenario* is a database with its
tables and a ``FOR ALL TABLES`` publication; replication slots are created
before the workload is written, so every reader decodes exactly the same
changes, and dropped with the scenario. Readers:

* ``recvlogical``: ``pg_recvlogical`` (pgoutput, proto_version 1) to /dev/null, the
  ceiling; its fixed start-up cost (process, connection; ~7 ms, measured on an
  empty range) is subtracted;
* ``worker``: cdcd in a child process (``bench/_worker.py``), backlog or live.

Live runs pace a writer (open loop: it does not slow down when cdcd does) and
may read back with a read_committed consumer.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _workload as wl
import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fix_kafka import MockKafka, RealKafka  # noqa: E402
from tests.fix_pg import PgCluster, _server_user, find_bindir  # noqa: E402

WORKER = Path(__file__).with_name("_worker.py")
LIVE_ID_BASE = 1_000_000_000  # live rows; warm-up rows use ids below it


def fmt_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def histogram_summary(histogram: list[list[int]]) -> dict[str, float | int]:
    """Percentiles (bucket lower bounds, ms) from ``[µs bucket, count]`` pairs."""
    total = sum(count for _, count in histogram)
    if not total:
        return {"n": 0}
    out: dict[str, float | int] = {"n": total, "max": histogram[-1][0] / 1000.0}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        seen, rank = 0, q * (total - 1)
        for bucket, count in histogram:
            seen += count
            if seen > rank:
                out[name] = bucket / 1000.0
                break
    return out


def summary(values_ms: list[float]) -> dict[str, float | int]:
    if not values_ms:
        return {"n": 0}
    return {"n": len(values_ms), "p50": statistics.median(values_ms), "p90": percentile(values_ms, 0.90),
            "p99": percentile(values_ms, 0.99), "max": max(values_ms)}


class Worker:
    """A cdcd child process; ``result()`` waits for its final JSON line."""

    def __init__(self, bench: Bench, spec: dict[str, Any], *, profile: Path | None = None) -> None:
        self.log = bench.base / f"worker-{spec['slot']}.log"
        self._stderr = open(self.log, "w")  # noqa: SIM115 - closed in result()
        if profile is not None:
            spec = {**spec, "wait_go": True}
        self.proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        ready = self._line()
        self.spy: subprocess.Popen[bytes] | None = None
        if profile is not None:
            self.spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(ready["ready"]), "--rate", "250", "--function", "--format", "raw",
                 "--output", str(profile), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let py-spy attach before the work starts
            self.send("go")
        self._line("streaming")

    def _line(self, key: str | None = None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"cdcd worker exited early; its log:\n{self.log.read_text()[-4000:]}")
            obj: dict[str, Any] = json.loads(line)
            if "error" in obj:
                raise RuntimeError(f"cdcd worker: {obj['error']}; its log:\n{self.log.read_text()[-4000:]}")
            if key is None or key in obj:
                return obj

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def query(self) -> dict[str, Any]:
        self.send("query")
        return self._line("events")

    def result(self, *, stop: bool = False) -> dict[str, Any]:
        if stop:
            self.send("stop")
        out = self._line("elapsed_s")
        self.proc.wait(60)
        if self.spy is not None:
            self.spy.wait(60)
        self._stderr.close()
        return out


@dataclass
class Scenario:
    bench: Bench
    db: str
    shape: wl.Shape
    tables: list[str]
    slots: list[str] = field(default_factory=list)

    def connect(self) -> psycopg.Connection[Any]:
        return self.bench.cluster.connect(self.db)

    def create_slots(self, names: list[str]) -> None:
        with self.connect() as conn:
            for name in names:
                conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
        self.slots += names

    def load(self, rows: int, txn_rows: int) -> tuple[int, list[int]]:
        """Touch every table in one transaction, then write the backlog; returns (changes, [touched, end])."""
        with self.connect() as conn:
            wl.touch(conn, self.shape, self.tables)
            touched = wl.wal_end(conn)
            changes = wl.load(conn, self.shape, self.tables, rows, txn_rows)
            return changes, [touched, wl.wal_end(conn)]

    def recvlogical(self, slot: str, end: int) -> float:
        cluster = self.bench.cluster
        cmd = [str(cluster.bindir / "pg_recvlogical"), "-d", cluster.dsn(self.db), "--slot", slot, "--start",
               "-o", "proto_version=1", "-o", "publication_names=bench", "-E", fmt_lsn(end), "-f", "/dev/null",
               "--no-loop"]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return max(1e-6, time.perf_counter() - started - self.bench.recv_overhead_s)

    def debezium(self, slot: str, expected: int) -> dict[str, Any]:
        """Debezium 3.6.3 embedded (JSON with schemas, no Kafka) over the slot: first record to the last.

        The JVM start and the connection are left out (as ``recv_overhead_s`` is for
        pg_recvlogical): the rate is the records after the first batch over the time after it.
        """
        run = self.debezium_child(mode="stream", slot=slot, expected=expected, prefix=self.topic_prefix(slot))
        seconds = run.result["seconds"] - run.result["first_s"]
        rate = (expected - run.result["first_batch"]) / seconds
        return {"elapsed_s": seconds, "rate": rate, "us_per_event": 1e6 / rate}

    def debezium_child(self, **spec: Any) -> DebeziumRun:
        """Run bench/_debezium.py on this database (``spec``: mode, expected, prefix, slot)."""
        params = psycopg.conninfo.conninfo_to_dict(self.bench.cluster.dsn(self.db))
        spec.update(params={k: str(v) for k, v in params.items()},
                    workdir=tempfile.mkdtemp(prefix="cdcd-bench-dbz-", dir=self.bench.base))
        with tempfile.TemporaryFile(mode="w+") as stderr:  # a file: the JVM's logs never fill a pipe
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_debezium.py"), json.dumps(spec)],
                                    stdout=subprocess.PIPE, stderr=stderr, text=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            line = proc.stdout.readline() if proc.stdout else ""
            wall = time.perf_counter() - started
            _, _, usage = os.wait4(proc.pid, 0)
            result = json.loads(line) if line.startswith("{") else {}
            if result.get("rows") != spec["expected"]:
                stderr.seek(0)
                raise RuntimeError(f"Debezium run failed: {result} {stderr.read()[-3000:]}")
        return DebeziumRun(result, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)

    def spec(self, slot: str, sink: str, **extra: Any) -> dict[str, Any]:
        return {"dsn": self.bench.cluster.dsn(self.db), "slot": slot, "sink": sink,
                "bootstrap": self.bench.broker.bootstrap, "topic_prefix": self.topic_prefix(slot), **extra}

    def topic_prefix(self, slot: str) -> str:
        """Unique per run on a real broker, which keeps the topics of earlier runs."""
        return f"b{self.bench.tag}{slot}"

    def cdcd(self, slot: str, sink: str, marks: list[int], *, profile: Path | None = None,
             cprofile: Path | None = None, **spec: Any) -> dict[str, Any]:
        """A backlog run up to the last mark: elapsed, CPU, peak RSS of the cdcd process, and per mark.

        ``spec`` adds to the worker's spec (``env`` for the configuration, ``count_bytes``)."""
        extra: dict[str, Any] = {"cprofile": str(cprofile)} if cprofile is not None else {}
        extra.update(spec)
        return Worker(self.bench, self.spec(slot, sink, marks=marks, **extra), profile=profile).result()

    def drop(self) -> None:
        cluster = self.bench.cluster
        for slot in self.slots:
            try:
                cluster.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            except psycopg.Error:
                pass
        cluster.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        if self.bench.external:
            delete_topics(self.bench.broker.bootstrap, [f"{self.topic_prefix(slot)}." for slot in self.slots])


def delete_topics(bootstrap: str, prefixes: list[str]) -> None:
    """Delete a run's topics from a real broker, which would keep them for good: its heap, and
    with it the length and frequency of its collector's pauses, grows with every partition."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(tuple(prefixes))]
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - a leftover topic costs the broker, not the result
            print(f"# could not delete a topic: {exc}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DebeziumRun:
    """One bench/_debezium.py run: its JSON line, wall seconds from its start, CPU seconds, peak RSS."""

    result: dict[str, Any]
    wall_s: float
    cpu_s: float
    rss_mib: float


class Bench:
    """A throwaway PostgreSQL and a broker: the embedded mock, or a real cluster (``bootstrap``)."""

    def __init__(self, bootstrap: str | None = None) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL server binaries not found: run scripts/install-deps")
        self.base = Path(tempfile.mkdtemp(prefix="cdcd-bench-"))
        os.chmod(self.base, 0o700)
        self.cluster = PgCluster(bindir, self.base, run_as=_server_user())
        self.cluster.settings["fsync"] = "on"
        self.external = bootstrap is not None
        self.broker: MockKafka | RealKafka = RealKafka(bootstrap) if bootstrap is not None else MockKafka()
        # A real broker keeps earlier runs' topics and transactional ids: this run's names are its own.
        self.tag = f"{os.getpid() % 10_000}x{int(time.time()) % 100_000}_" if self.external else ""
        self.recv_overhead_s = 0.0
        self._n = 0

    def __enter__(self) -> Bench:
        self.cluster.init()
        self.cluster.start()
        if isinstance(self.broker, MockKafka):
            self.broker.start()
        self.pg_version = str(self.cluster.execute("SHOW server_version")[0][0])
        self.recv_overhead_s = self._recv_overhead()
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(self.broker, MockKafka):
            self.broker.close()
        self.cluster.destroy()

    def scenario(self, shape: wl.Shape, ntables: int = 1) -> Scenario:
        self._n += 1
        db = f"s{self._n}_{shape.name}_{ntables}"
        self.cluster.execute(f'CREATE DATABASE "{db}"')
        scenario = Scenario(self, db, shape, wl.table_names(shape, ntables))
        with scenario.connect() as conn:
            wl.install(conn)
            wl.create_tables(conn, shape, scenario.tables)
            conn.execute("CREATE PUBLICATION bench FOR ALL TABLES")
        return scenario

    def _recv_overhead(self) -> float:
        """pg_recvlogical's fixed cost (process start, connection, slot start) on an empty range."""
        scenario = self.scenario(wl.NARROW)
        try:
            scenario.create_slots(["empty"])
            with scenario.connect() as conn:
                end = wl.wal_end(conn)
            return statistics.median(scenario.recvlogical("empty", end) for _ in range(5))
        finally:
            scenario.drop()


# -- live runs ------------------------------------------------------------------------------


class Consumer:
    """A read_committed consumer measuring receive time − ``source.ts_us`` of live rows."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        from confluent_kafka import Consumer as KafkaConsumer

        self._consumer = KafkaConsumer({
            "bootstrap.servers": bootstrap, "group.id": f"bench-{topics[0]}", "isolation.level": "read_committed",
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 1, "fetch.min.bytes": 1, "log_level": 3})
        self._consumer.subscribe(topics)
        self.latencies_ms: list[float] = []
        self.seen_ids: set[int] = set()
        self.warm = threading.Event()
        self.got = threading.Condition()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            msg = self._consumer.poll(0.05)
            if msg is None or msg.error() or msg.value() is None:
                continue
            now_us = time.time_ns() // 1000
            payload = orjson.loads(msg.value())["payload"]  # type: ignore[arg-type]
            if payload["after"] is None:
                continue
            row_id = payload["after"]["id"]
            if row_id < LIVE_ID_BASE:
                self.warm.set()
                continue
            with self.got:
                self.latencies_ms.append((now_us - payload["source"]["ts_us"]) / 1000.0)
                self.seen_ids.add(row_id)
                self.got.notify_all()

    def wait_for(self, row_id: int, timeout: float) -> bool:
        with self.got:
            return self.got.wait_for(lambda: row_id in self.seen_ids, timeout)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._consumer.close()


@dataclass
class LiveRun:
    """A live cdcd on a fresh slot, a writer connection and optionally a consumer."""

    scenario: Scenario
    slot: str
    consume: bool = False
    rss_interval_s: float = 0.0

    def __post_init__(self) -> None:
        s = self.scenario
        # Watching RSS: keep the latency bookkeeping bounded, it would otherwise grow with the run.
        latency: bool | str = "bounded" if self.rss_interval_s else True
        self.worker = Worker(s.bench, s.spec(self.slot, "kafka", latency=latency, rss_interval_s=self.rss_interval_s))
        s.slots.append(self.slot)
        self.conn = s.connect()
        self.next_id = LIVE_ID_BASE
        self.consumer: Consumer | None = None
        if self.consume:
            topics = [f"{s.topic_prefix(self.slot)}.public.{t}" for t in s.tables]
            if isinstance(s.bench.broker, RealKafka):
                for topic in topics:  # before subscribing: a consumer does not wait for auto-creation
                    s.bench.broker.create_topic(topic)
            self.consumer = Consumer(s.bench.broker.bootstrap, topics)
        self._warm_up()

    def _warm_up(self) -> None:
        """Every table seen once (Relation messages, encoders); the consumer assigned and caught up."""
        s, warm_id = self.scenario, 1
        for table in s.tables:
            wl.insert_live(self.conn, s.shape, table, warm_id, 1)
        deadline = time.monotonic() + 60
        while self.worker.query()["transactions"] < len(s.tables):
            if time.monotonic() > deadline:
                raise RuntimeError("cdcd did not process the warm-up rows within 60 s")
            time.sleep(0.05)
        if self.consumer is not None:
            while not self.consumer.warm.wait(1.0):
                warm_id += 1
                wl.insert_live(self.conn, s.shape, s.tables[0], warm_id, 1)
                if time.monotonic() > deadline:
                    raise RuntimeError("the consumer saw no warm-up row within 60 s")
        time.sleep(0.5)
        self.measure_from_us = time.time_ns() // 1000

    def insert(self, table: str, count: int) -> int:
        """One transaction of ``count`` rows; returns the last id."""
        wl.insert_live(self.conn, self.scenario.shape, table, self.next_id, count)
        self.next_id += count
        return self.next_id - 1

    def paced(self, rate: float, seconds: float, rows: tuple[int, int] = (1, 5),
              writers: int = 2) -> dict[str, float]:
        """``rate`` transactions per second of ``rows`` rows each (uniform), round-robin over the tables.

        Open loop, the schedule shared by ``writers`` connections: one connection's
        synchronous commits (an fsync each) cannot reach 1,000 per second on a loaded machine.
        """
        tables = self.scenario.tables
        interval = 1.0 / rate
        started = time.perf_counter()
        stop_at = started + seconds
        counts = [[0, 0] for _ in range(writers)]  # transactions, changes
        first_ids = [self.next_id + w * 100_000_000 for w in range(writers)]

        def write(w: int) -> None:
            rng = random.Random(42 + w)
            conn = self.conn if w == 0 else self.scenario.connect()
            next_id = first_ids[w]
            next_at = started + w * interval
            n = 0
            try:
                while next_at < stop_at:
                    count = rng.randint(*rows)
                    wl.insert_live(conn, self.scenario.shape, tables[n % len(tables)], next_id, count)
                    next_id += count
                    n += 1
                    counts[w][0] += 1
                    counts[w][1] += count
                    next_at += interval * writers
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
            finally:
                if w:
                    conn.close()

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        self.next_id = first_ids[-1] + 100_000_000
        n, changes = sum(c[0] for c in counts), sum(c[1] for c in counts)
        return {"transactions": n, "achieved_rate": n / elapsed, "changes": changes, "changes_rate": changes / elapsed}

    def wait_acked(self, count: int, timeout: float) -> None:
        """Until cdcd's sink committed ``count`` measured transactions (warm-up ones included)."""
        deadline = time.monotonic() + timeout
        while (self.worker.query()["acked"] or 0) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cdcd did not commit {count} transactions within {timeout} s")
            time.sleep(0.01)

    def finish(self, drain_s: float = 1.0) -> dict[str, Any]:
        time.sleep(drain_s)
        if self.consumer is not None:
            self.consumer.close()
        self.conn.close()
        result = self.worker.result(stop=True)
        measured = [lat / 1000.0 for ts, lat in result["commit_latency"] if ts >= self.measure_from_us]
        result["cdcd_ms"] = measured
        result["arrival_ms"] = [lat / 1000.0 for ts, lat in result["arrival_latency"] if ts >= self.measure_from_us]
        result["commits_raw"] = [(ts, took) for ts, took in result["commit_durations"] if ts >= self.measure_from_us]
        result["commit_ms"] = [took / 1000.0 for _, took in result["commits_raw"]]
        result["cdcd_histogram"] = result["latency_histogram"]  # bounded runs (warm-up included)
        result["consumer_ms"] = self.consumer.latencies_ms if self.consumer is not None else []
        return result
