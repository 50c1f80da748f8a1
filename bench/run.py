"""cdcd benchmark: throughput against the pg_recvlogical ceiling, and commit-to-Kafka latency.

    python3 bench/run.py [--rows 100000] [--txn-rows 10] [--latency-seconds 10] [--rate 200]

What it does, on a throwaway PostgreSQL and the embedded Kafka broker:

1. creates one pgoutput slot per reader *before* the workload, so every
   reader decodes exactly the same changes;
2. writes the workload (inserts, updates, deletes in transactions of
   ``--txn-rows``) and notes the WAL end;
3. ceiling: ``pg_recvlogical`` (pgoutput, proto_version 1) reads its slot up
   to that WAL end, to /dev/null;
4. cdcd reads its slot up to the same WAL end through the Kafka sink
   (transactions, JSON with schema), and again through the stdout sink to
   /dev/null; the clock runs from "streaming" until the confirmed LSN passes
   the WAL end, i.e. until Kafka acknowledged everything;
5. latency: cdcd streams live while a writer commits ``--rate`` small
   transactions per second; a read_committed consumer measures, per event,
   receive time minus the PostgreSQL commit timestamp (``source.ts_us``).

Figures are printed as a Markdown table and written to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fix_kafka import MockKafka  # noqa: E402
from tests.fix_pg import PgCluster, _server_user, find_bindir  # noqa: E402

from cdcd import config as config_mod, logs  # noqa: E402
from cdcd.daemon import Daemon  # noqa: E402
from cdcd.sinks.stdout import StdoutSink  # noqa: E402

NARROW = "CREATE TABLE narrow (id bigint PRIMARY KEY, n int NOT NULL, s text, ts timestamptz DEFAULT now())"


def workload(cluster: PgCluster, db: str, rows: int, txn_rows: int) -> int:
    """Insert 60 %, update 30 %, delete 10 % of ``rows`` changes; returns the change count."""
    inserts, updates, deletes = int(rows * 0.6), int(rows * 0.3), rows - int(rows * 0.6) - int(rows * 0.3)
    with cluster.connect(db) as conn:
        for start in range(0, inserts, txn_rows):
            end = min(inserts, start + txn_rows)
            conn.execute("INSERT INTO narrow (id, n, s) SELECT g, g %% 1000, md5(g::text) "
                         "FROM generate_series(%s::bigint, %s::bigint) g", (start + 1, end))
        for start in range(0, updates, txn_rows):
            end = min(updates, start + txn_rows)
            conn.execute("UPDATE narrow SET n = n + 1 WHERE id BETWEEN %s AND %s", (start + 1, end))
        for start in range(0, deletes, txn_rows):
            end = min(deletes, start + txn_rows)
            conn.execute("DELETE FROM narrow WHERE id BETWEEN %s AND %s", (inserts - end + 1, inserts - start))
    return inserts + updates + deletes


def wal_end(cluster: PgCluster, db: str) -> int:
    return int(cluster.execute("SELECT pg_current_wal_lsn() - '0/0'", dbname=db)[0][0])


def fmt_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def run_recvlogical(cluster: PgCluster, db: str, slot: str, end: int) -> float:
    cmd = [str(cluster.bindir / "pg_recvlogical"), "-d", cluster.dsn(db), "--slot", slot, "--start",
           "-o", "proto_version=1", "-o", "publication_names=bench", "-E", fmt_lsn(end), "-f", "/dev/null",
           "--no-loop"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def run_cdcd(cluster: PgCluster, db: str, slot: str, end: int, sink: str, bootstrap: str) -> float:
    cfg = config_mod.load(env={}, overrides={
        "dsn": cluster.dsn(db), "slot_name": slot, "publication_name": "bench", "sink": sink,
        "bootstrap_servers": bootstrap, "topic_prefix": f"bench{slot}", "log_level": "warning"})
    factory: Callable[..., object] | None = None
    if sink == "stdout":
        devnull = open(os.devnull, "wb")  # noqa: SIM115 - closed below
        factory = lambda _c: StdoutSink(devnull)  # noqa: E731
    daemon = Daemon(cfg, **({"sink_factory": factory} if factory else {}))  # type: ignore[arg-type]
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    while not daemon.stats.streaming:
        time.sleep(0.001)
    started = time.perf_counter()
    while daemon.tracker is None or daemon.tracker.committed < end:
        time.sleep(0.001)
        if not thread.is_alive():
            raise RuntimeError("cdcd stopped before reaching the end of the workload")
    elapsed = time.perf_counter() - started
    daemon.stop.set()
    thread.join(30)
    if factory:
        devnull.close()
    return elapsed


def measure_latency(cluster: PgCluster, db: str, bootstrap: str, seconds: float, rate: int) -> list[float]:
    from confluent_kafka import Consumer

    cluster.execute("CREATE TABLE lat (id bigserial PRIMARY KEY, v int)", dbname=db)
    cluster.execute("ALTER PUBLICATION bench ADD TABLE lat", dbname=db)
    cfg = config_mod.load(env={}, overrides={
        "dsn": cluster.dsn(db), "slot_name": "lat", "publication_name": "bench", "sink": "kafka",
        "bootstrap_servers": bootstrap, "topic_prefix": "benchlat", "log_level": "warning"})
    daemon = Daemon(cfg)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    while not daemon.stats.streaming:
        time.sleep(0.01)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-lat", "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 1, "fetch.min.bytes": 1,
                         "log_level": 3})
    consumer.subscribe(["benchlat.public.lat"])
    latencies: list[float] = []
    done = threading.Event()
    warm = threading.Event()

    def consume() -> None:
        while not done.is_set():
            msg = consumer.poll(0.05)
            if msg is None or msg.error() or msg.value() is None:
                continue
            now_us = time.time_ns() // 1000
            payload = json.loads(msg.value())["payload"]
            if payload["after"]["v"] < 0:
                warm.set()  # the warm-up row: the consumer is assigned and caught up
            elif warm.is_set():
                latencies.append((now_us - payload["source"]["ts_us"]) / 1000.0)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    with cluster.connect(db) as conn:
        # Warm up until the consumer group is assigned and sees a row; only then measure.
        while not warm.is_set():
            conn.execute("INSERT INTO lat (v) VALUES (-1)")
            warm.wait(1.0)
        time.sleep(0.5)
        interval = 1.0 / rate
        next_at = time.perf_counter()
        stop_at = next_at + seconds
        while next_at < stop_at:
            conn.execute("INSERT INTO lat (v) SELECT g FROM generate_series(1, %s) g", (random.randint(1, 5),))
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    time.sleep(2.0)
    done.set()
    reader.join(5)
    consumer.close()
    daemon.stop.set()
    thread.join(30)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--txn-rows", type=int, default=10)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200, help="transactions per second in the latency run")
    args = parser.parse_args()
    logs.configure("warning", "json")
    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL server binaries not found: run scripts/install-deps", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="cdcd-bench-"))
    os.chmod(base, 0o700)
    cluster = PgCluster(bindir, base, run_as=_server_user())
    cluster.settings["fsync"] = "on"
    broker = MockKafka()
    try:
        cluster.init()
        cluster.start()
        broker.start()
        cluster.execute("CREATE DATABASE bench")
        cluster.execute(NARROW, dbname="bench")
        cluster.execute("CREATE PUBLICATION bench FOR TABLE narrow", dbname="bench")
        for slot in ("recv", "kafka", "stdout"):
            cluster.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,), dbname="bench")
        print(f"# writing {args.rows} row changes in transactions of {args.txn_rows} rows", file=sys.stderr)
        changes = workload(cluster, "bench", args.rows, args.txn_rows)
        end = wal_end(cluster, "bench")
        ceiling_s = run_recvlogical(cluster, "bench", "recv", end)
        kafka_s = run_cdcd(cluster, "bench", "kafka", end, "kafka", broker.bootstrap)
        stdout_s = run_cdcd(cluster, "bench", "stdout", end, "stdout", broker.bootstrap)
        latencies = measure_latency(cluster, "bench", broker.bootstrap, args.latency_seconds, args.rate)
    finally:
        broker.close()
        cluster.destroy()
    ceiling = changes / ceiling_s
    rows = [
        ("pg_recvlogical (pgoutput, ceiling)", ceiling_s, ceiling, 1.0),
        ("cdcd → Kafka (transactions, JSON+schema)", kafka_s, changes / kafka_s, (changes / kafka_s) / ceiling),
        ("cdcd → stdout (/dev/null)", stdout_s, changes / stdout_s, (changes / stdout_s) / ceiling),
    ]
    out = [f"# cdcd benchmark ({changes} row changes, {args.txn_rows} rows per transaction)", "",
           "| reader | seconds | events/s | ratio to ceiling |", "|---|---:|---:|---:|"]
    out += [f"| {name} | {s:.2f} | {rate:,.0f} | {ratio:.2f} |" for name, s, rate, ratio in rows]
    if latencies:
        out += ["", f"Commit-to-visible latency (read_committed consumer, {len(latencies)} events at "
                f"{args.rate} txn/s): p50 {statistics.median(latencies):.1f} ms, "
                f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"]
    text = "\n".join(out) + "\n"
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
