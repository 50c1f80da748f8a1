"""The benchmark matrix: throughput, latency, CPU and memory, and how they scale.

Each step returns plain dicts (written to ``bench/results/matrix.json``), so the
report can be redone without rerunning (``run.py --report-only``).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import _workload as wl
from _harness import Bench, LiveRun, histogram_summary, summary


@dataclass(frozen=True)
class Plan:
    rows: int = 100_000
    txn_rows: int = 10
    reps: int = 3
    txn_sizes: tuple[int, ...] = (1, 10, 100, 10_000, 100_000)
    table_counts: tuple[int, ...] = (1, 10, 100, 1000)
    rate: float = 1000.0
    latency_seconds: float = 15.0
    scale_latency_seconds: float = 8.0
    idle_samples: int = 50
    idle_pause_s: float = 0.2
    soak_seconds: float = 60.0
    soak_rate: float = 1000.0

    @classmethod
    def quick(cls, **overrides: Any) -> Plan:
        base = dict(rows=20_000, reps=1, txn_sizes=(1, 10, 100, 10_000, 20_000), table_counts=(1, 10, 100, 1000),
                    latency_seconds=5.0, scale_latency_seconds=4.0, idle_samples=20, soak_seconds=15.0)
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


def note(text: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _per_event(run: dict[str, Any], total: int, rows: int, ntables: int) -> dict[str, Any]:
    """Whole run (``total`` events: one touch per table, then ``rows``), and its two phases."""
    (t1, cpu1, tcpu1), (t2, cpu2, tcpu2) = run["marks"]
    if run["events"] != total:
        raise RuntimeError(f"cdcd emitted {run['events']} events, the workload has {total}")
    return {
        "elapsed_s": run["elapsed_s"], "rate": total / run["elapsed_s"],
        "us_per_event": run["elapsed_s"] / total * 1e6,
        "cpu_s_per_m": cpu2 / total * 1e6, "thread_cpu_s_per_m": tcpu2 / total * 1e6,
        "setup_ms_per_table": t1 / ntables * 1000,
        "steady_us_per_event": (t2 - t1) / rows * 1e6, "steady_cpu_us_per_event": (cpu2 - cpu1) / rows * 1e6,
        "steady_thread_cpu_us_per_event": (tcpu2 - tcpu1) / rows * 1e6,
        "maxrss_mib": run["maxrss_kb"] / 1024,
    }


def _median_of(reps: list[dict[str, Any]], key: str) -> dict[str, Any]:
    runs = [r[key] for r in reps]
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    if "ratio" in runs[0]:
        out["min_ratio"] = min(r["ratio"] for r in runs)
        out["max_ratio"] = max(r["ratio"] for r in runs)
    return out


def throughput(bench: Bench, shape: wl.Shape, rows: int, txn_rows: int, reps: int,
               sinks: tuple[str, ...] = ("kafka", "stdout"), ntables: int = 1,
               profile: Path | None = None, debezium: bool = False) -> dict[str, Any]:
    """``reps`` rounds of ceiling + each sink (+ Debezium) on the same backlog; medians and ratios per round."""
    s = bench.scenario(shape, ntables)
    try:
        kinds = ("recv",) + sinks + (("debezium",) if debezium else ())
        s.create_slots([f"{s.db}_{kind}{i}" for i in range(reps) for kind in kinds])
        started = time.perf_counter()
        rows, marks = s.load(rows, txn_rows)
        changes = rows + ntables  # the touch transaction: one row per table
        note(f"{shape.name}: {rows} changes in transactions of {txn_rows} over {ntables} table(s) "
             f"written in {time.perf_counter() - started:.1f} s")
        rounds = []
        for i in range(reps):
            order = list(kinds[i % len(kinds):] + kinds[:i % len(kinds)])  # rotate: no reader always first
            runs: dict[str, Any] = {}
            for kind in order:
                slot = f"{s.db}_{kind}{i}"
                if kind == "recv":
                    seconds = s.recvlogical(slot, marks[-1])
                    runs[kind] = {"elapsed_s": seconds, "rate": changes / seconds,
                                  "us_per_event": seconds / changes * 1e6}
                elif kind == "debezium":
                    runs[kind] = s.debezium(slot, changes)
                else:
                    runs[kind] = _per_event(s.cdcd(slot, kind, marks, profile=profile), changes, rows, ntables)
            for kind in kinds[1:]:
                runs[kind]["ratio"] = runs[kind]["rate"] / runs["recv"]["rate"]
            note(f"  round {i + 1}: " + ", ".join(f"{k} {runs[k]['rate']:,.0f}/s" for k in kinds))
            rounds.append(runs)
        return {"shape": shape.name, "changes": changes, "txn_rows": txn_rows, "tables": ntables, "reps": reps,
                **{kind: _median_of(rounds, kind) for kind in kinds}, "rounds": rounds}
    finally:
        s.drop()


AVRO: Final = "io.confluent.connect.avro.AvroConverter"
JSON: Final = "org.apache.kafka.connect.json.JsonConverter"
# name -> configuration environment; the registry is confluent-kafka's in-memory one (the worker runs cdcd in-process)
CONVERTERS: Final[dict[str, dict[str, str]]] = {
    "JSON with schemas": {},
    "JSON without schemas": {"CDCD_KEY_CONVERTER_SCHEMAS_ENABLE": "false", "CDCD_VALUE_CONVERTER_SCHEMAS_ENABLE": "false"},
    "Avro (Schema Registry)": {"CDCD_KEY_CONVERTER": AVRO, "CDCD_VALUE_CONVERTER": AVRO,
                               "CDCD_KEY_CONVERTER_SCHEMA_REGISTRY_URL": "mock://bench",
                               "CDCD_VALUE_CONVERTER_SCHEMA_REGISTRY_URL": "mock://bench"},
}


def converters(bench: Bench, shape: wl.Shape, rows: int, txn_rows: int, reps: int) -> dict[str, Any]:
    """cdcd -> Kafka with each converter on the same backlog, ``reps`` rotated rounds: events/s and bytes/event."""
    s = bench.scenario(shape)
    names = list(CONVERTERS)
    try:
        s.create_slots(["%s_conv%d_%d" % (s.db, j, i) for i in range(reps) for j in range(len(names))])
        rows, marks = s.load(rows, txn_rows)
        changes = rows + 1
        rounds = []
        for i in range(reps):
            runs: dict[str, Any] = {}
            for j in [(k + i) % len(names) for k in range(len(names))]:
                run = s.cdcd("%s_conv%d_%d" % (s.db, j, i), "kafka", marks, env=CONVERTERS[names[j]], count_bytes=True)
                runs[names[j]] = {**_per_event(run, changes, rows, 1), "records": run["records_out"],
                                  "bytes_per_record": run["bytes_out"] / max(1, run["records_out"])}
            note(f"  round {i + 1}: " + ", ".join(f"{k} {v['rate']:,.0f}/s {v['bytes_per_record']:.0f} B"
                                                 for k, v in runs.items()))
            rounds.append(runs)
        return {"shape": shape.name, "changes": changes, "txn_rows": txn_rows, "reps": reps,
                **{name: _median_of(rounds, name) for name in names}}
    finally:
        s.drop()


def live_latency(bench: Bench, shape: wl.Shape, rate: float, seconds: float, *, consume: bool,
                 ntables: int = 1, rss_interval_s: float = 0.0, rows: tuple[int, int] = (1, 5)) -> dict[str, Any]:
    """``rate`` transactions per second of ``rows`` rows for ``seconds``: consumer and in-cdcd latency."""
    s = bench.scenario(shape, ntables)
    try:
        run = LiveRun(s, f"{s.db}_live", consume=consume, rss_interval_s=rss_interval_s)
        writer = run.paced(rate, seconds, rows)
        result = run.finish()
        return {"shape": shape.name, "tables": ntables, "rate": rate, "seconds": seconds, "rows": list(rows),
                **writer,
                "consumer": summary(result["consumer_ms"]),
                "cdcd": histogram_summary(result["cdcd_histogram"]) if rss_interval_s else summary(result["cdcd_ms"]),
                "arrival": summary(result["arrival_ms"]), "commit": summary(result["commit_ms"]),
                "commits_us": result["commits_raw"],  # (wall-clock µs returned, µs taken): to line up with the broker
                "cpu_share": result["cpu_process_s"] / result["elapsed_s"],
                "events": result["events"], "elapsed_s": result["elapsed_s"],
                "kafka_commits": result.get("kafka_commits"), "gc_full_ms": result.get("gc_full_ms", []),
                "maxrss_mib": result["maxrss_kb"] / 1024, "rss": result["rss"]}
    finally:
        s.drop()


def idle_latency(bench: Bench, samples: int, pause_s: float) -> dict[str, Any]:
    """One single-row transaction at a time, each waited for at the consumer, a pause between."""
    s = bench.scenario(wl.NARROW)
    try:
        run = LiveRun(s, f"{s.db}_live", consume=True)
        assert run.consumer is not None
        missed = 0
        for _ in range(samples):
            row_id = run.insert(s.tables[0], 1)
            if not run.consumer.wait_for(row_id, 5.0):
                missed += 1
            time.sleep(pause_s)
        result = run.finish(drain_s=0.2)
        return {"samples": samples, "pause_s": pause_s, "missed": missed,
                "consumer": summary(result["consumer_ms"]), "cdcd": summary(result["cdcd_ms"]),
                "arrival": summary(result["arrival_ms"]), "commit": summary(result["commit_ms"]),
                "gc_full_ms": result.get("gc_full_ms", [])}
    finally:
        s.drop()


LOADS: Final = (("1,000 changes/s", 1000.0, (1, 5)), ("5,000 changes/s", 5000.0, (1, 10)))
"""The loaded latency runs: changes per second, rows per transaction (uniform)."""


def latency_suite(bench: Bench, shape: wl.Shape, seconds: float, idle_samples: int,
                  loads: tuple[str, ...] = ("idle", *(name for name, _, _ in LOADS))) -> dict[str, Any]:
    """Consumer-visible latency idle (one change every 200 ms) and under each of ``LOADS``."""
    out: dict[str, Any] = {"broker": bench.broker.bootstrap if bench.external else "embedded mock",
                           "real_broker": bench.external, "shape": shape.name, "seconds": seconds}
    if "idle" in loads:
        note(f"idle: {idle_samples} single changes, 200 ms apart")
        out["idle"] = idle_latency(bench, idle_samples, 0.2)
    for name, changes_rate, rows in LOADS:
        if name not in loads:
            continue
        txn_rate = changes_rate / ((rows[0] + rows[1]) / 2)
        note(f"{name}: {txn_rate:.0f} txn/s of {rows[0]}-{rows[1]} rows for {seconds:.0f} s")
        out[name] = live_latency(bench, shape, txn_rate, seconds, consume=True, rows=rows)
    return out


def txn_size_latency(bench: Bench, sizes: tuple[int, ...]) -> dict[int, Any]:
    """Delivery latency of one transaction of N rows on an idle database: commit → Kafka commit returned."""
    s = bench.scenario(wl.NARROW)
    out: dict[int, Any] = {}
    try:
        run = LiveRun(s, f"{s.db}_live")
        acked = run.worker.query()["acked"]
        for size in sizes:
            first = time.time_ns() // 1000
            tries = 5 if size <= 100 else 3 if size <= 10_000 else 1
            for _ in range(tries):
                run.insert(s.tables[0], size)
                acked += 1
                run.wait_acked(acked, timeout=120 + size / 1000)
                time.sleep(0.2)
            out[size] = {"from_us": first, "tries": tries}
        result = run.finish(drain_s=0.2)
        samples = [(ts, lat / 1000.0) for ts, lat in result["commit_latency"]]
        bounds = [out[size]["from_us"] for size in sizes] + [2**63]
        for k, size in enumerate(sizes):
            values = [ms for ts, ms in samples if bounds[k] <= ts < bounds[k + 1]]
            out[size] = {**summary(values), "us_per_row": statistics.median(values) * 1000 / size if values else None}
        return out
    finally:
        s.drop()


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def rss_trend(rss: list[list[float]], rate: float) -> dict[str, Any]:
    """RSS after the first fifth (warm-up): least-squares slope over all of it and over its second half.

    The verdict uses the second half: the allocator grows RSS in steps early on (arenas, librdkafka
    buffers), and a leak shows as a slope that persists, not as one step.
    """
    points = rss[len(rss) // 5:]
    if len(points) < 6:
        return {"samples": len(rss)}
    xs = [p[0] for p in points]
    ys = [p[1] / 2**20 for p in points]
    half = len(points) // 2
    slope, late = _slope(xs, ys), _slope(xs[half:], ys[half:])  # MiB/s
    late_growth = late * (xs[-1] - xs[half])
    return {"samples": len(rss), "start_mib": ys[0], "end_mib": ys[-1], "max_mib": max(p[1] for p in rss) / 2**20,
            "slope_kib_per_min": slope * 1024 * 60, "late_slope_kib_per_min": late * 1024 * 60,
            "late_growth_mib": late_growth, "late_bytes_per_txn": late * 2**20 / rate if rate else None,
            "window_s": xs[-1] - xs[0], "late_window_s": xs[-1] - xs[half],
            "flat": abs(late_growth) < max(1.0, 0.01 * statistics.fmean(ys))}


def run_matrix(bench: Bench, plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {"plan": plan.__dict__, "pg_version": bench.pg_version,
                               "recv_overhead_ms": bench.recv_overhead_s * 1000}
    started = time.perf_counter()
    note("throughput: narrow and wide, Kafka and stdout sinks")
    results["throughput"] = {shape.name: throughput(bench, shape, plan.rows, plan.txn_rows, plan.reps)
                             for shape in (wl.NARROW, wl.WIDE)}
    note(f"latency at {plan.rate:.0f} txn/s of 1-5 rows: narrow and wide")
    results["latency"] = {shape.name: live_latency(bench, shape, plan.rate, plan.latency_seconds, consume=True)
                          for shape in (wl.NARROW, wl.WIDE)}
    note(f"idle single-change latency, {plan.idle_samples} samples")
    results["idle"] = idle_latency(bench, plan.idle_samples, plan.idle_pause_s)
    note("scale: rows per transaction")
    sizes = tuple(min(size, plan.rows) for size in plan.txn_sizes)
    results["txn_sizes"] = {size: throughput(bench, wl.NARROW, plan.rows, size, 1) for size in sizes}
    results["txn_size_latency"] = txn_size_latency(bench, sizes)
    note("scale: number of tables")
    results["tables"] = {}
    for n in plan.table_counts:
        entry = throughput(bench, wl.NARROW, plan.rows, plan.txn_rows, 1, ntables=n)
        entry["latency"] = live_latency(bench, wl.NARROW, plan.rate, plan.scale_latency_seconds, consume=False,
                                        ntables=n)
        results["tables"][n] = entry
    note(f"memory: {plan.soak_seconds:.0f} s at {plan.soak_rate:.0f} txn/s")
    soak = live_latency(bench, wl.NARROW, plan.soak_rate, plan.soak_seconds, consume=False, rss_interval_s=1.0)
    soak["trend"] = rss_trend(soak["rss"], soak["achieved_rate"])
    results["soak"] = soak
    results["duration_s"] = time.perf_counter() - started
    return results
