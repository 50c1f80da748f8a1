"""Micro-benchmarks of cdcd's hot path.

    python3 bench/micro.py                 # writes bench/results/micro.md (no PostgreSQL or Kafka needed)
    python3 bench/micro.py --capture       # refresh bench/data/pgoutput-sample.json (needs PostgreSQL)

1. Budget: where one event's time goes, each stage timed alone.
2. Replay: captured pgoutput frames (narrow and wide table; 60 % inserts, 30 %
   updates, 10 % deletes) go through cdcd's real ``StreamingSession`` with a
   counting sink; µs per event, best and median of ``--pairs`` runs. Compare two
   builds (e.g. ``CDCD_CORE=python`` and ``compiled``, or ``--cdcd-path``) run by run.
3. Columns: the cost of each wide-table column's value converter.

``--float4``: 50,000 distinct ``real`` values through a one-column row encoder of the
current core, first sight and again (the python converter caches 65,536 texts).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if "--cdcd-path" in sys.argv:  # another build of the package (e.g. compiled with mypyc), before the imports
    sys.path.insert(0, sys.argv[sys.argv.index("--cdcd-path") + 1])

import _sample  # noqa: E402
from _replay import replay_once  # noqa: E402

from cdcd.debezium.envelope import EnvelopeOptions, TableEncoder  # noqa: E402
from cdcd.debezium.types import TypeOptions, column_codec  # noqa: E402
from cdcd.ops import logs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def per_call_us(fn: Callable[[], Any], number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def replay_table(events: int, runs: int) -> list[str]:
    """The current code's replay, ``runs`` times per shape (the machine is shared and noisy: best and median)."""
    out = ["## 2. Replay through StreamingSession (µs per event)", "",
           f"{events:,} events per run, {runs} runs; best and median.", "",
           "| shape | best | median |", "|---|---:|---:|"]
    for shape in ("narrow", "wide"):
        messages, table = _sample.load(shape)
        fr, n = _sample.frames(messages, events)
        replay_once(fr[: len(fr) // 10], table)
        timings = [replay_once(fr, table)[0] / n * 1e6 for _ in range(runs)]
        out.append(f"| {shape} | {min(timings):.2f} | {statistics.median(timings):.2f} |")
    return out


def budget_table(events: int) -> list[str]:
    """Where one event's time goes: each stage timed alone over the sample's changes; the rest by difference."""
    import cdcd.wire.frames as protocol
    from cdcd.debezium.envelope import SourceInfo
    from cdcd.decode.pgoutput import PgOutputDecoder

    out = ["## 0. Per-event budget of the current code (µs per event, sample mix of 60 % inserts, 30 % updates, "
           "10 % deletes)", "",
           "| stage | narrow | wide |", "|---|---:|---:|"]
    cols: dict[str, dict[str, float]] = {}
    for shape in ("narrow", "wide"):
        messages, table = _sample.load(shape)
        fr, n = _sample.frames(messages, events)
        decoder = PgOutputDecoder()
        changes = [m for m in messages if m[:1] in (b"I", b"U", b"D")]
        decoder.decode(next(m for m in messages if m[:1] == b"R"))
        decoded = [decoder.decode(m) for m in changes]
        frames = [f for f in fr[1:len(changes) + 2] if f[25:26] in (b"I", b"U", b"D")]
        encoder = TableEncoder(table, EnvelopeOptions(topic_prefix="bench", database="bench", connector_version="0"))

        def encode_all() -> None:
            for msg in decoded:
                source = SourceInfo(ts_us=1795547161012799, txid=1771, lsn=162789640, last_commit_lsn=162789000)
                kind = type(msg).__name__
                if kind == "Insert":
                    encoder.create(msg.new, source, None)  # type: ignore[attr-defined]
                elif kind == "Update":
                    encoder.update(msg.old_kind, msg.old, msg.new, source, None)  # type: ignore[attr-defined]
                else:
                    encoder.delete(msg.old_kind, msg.old, source, None)  # type: ignore[attr-defined]

        k = len(changes)
        parse_us = per_call_us(lambda: [protocol.parse_copy_data(f) for f in frames], 500) / k
        decode_us = per_call_us(lambda: [decoder.decode(m) for m in changes], 500) / k
        stage = {
            "frame parsing (`protocol.parse_copy_data`)": parse_us,
            "pgoutput decoding (`PgOutputDecoder.decode`)": decode_us,
            "values + envelope (`TableEncoder.create/update/delete`, incl. `SourceInfo`)":
                per_call_us(encode_all, 200) / k,
        }
        replay_once(fr[: len(fr) // 10], table)
        total = min(replay_once(fr, table)[0] for _ in range(3)) / n * 1e6
        stage["session loop, dispatch, `_emit`/`_send`, counters, tracker (the rest)"] = total - sum(stage.values())
        stage["**replay total** (section 1)"] = total
        cols[shape] = stage
    for name in cols["narrow"]:
        out.append(f"| {name} | {cols['narrow'][name]:.2f} | {cols['wide'][name]:.2f} |")
    out.append(f"| not in the replay: `Producer.produce` of one record (enqueue only) | {produce_us('narrow'):.2f} "
               f"| {produce_us('wide'):.2f} |")
    return out


def produce_us(shape: str) -> float:
    """The calling thread's cost of ``Producer.produce`` (queueing; the librdkafka threads do the rest)."""
    from confluent_kafka import Producer

    from cdcd.debezium.envelope import SourceInfo

    messages, table = _sample.load(shape)
    encoder = TableEncoder(table, EnvelopeOptions(topic_prefix="bench", database="bench", connector_version="0"))
    from cdcd.decode.pgoutput import PgOutputDecoder

    decoder = PgOutputDecoder()
    insert = [decoder.decode(m) for m in messages][2]
    record = encoder.create(insert.new, SourceInfo(ts_us=1, txid=1, lsn=1, last_commit_lsn=1), None)[0]  # type: ignore[attr-defined]
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "queue.buffering.max.messages": 2_000_000,
                         "queue.buffering.max.kbytes": 2_000_000, "linger.ms": 60_000, "log_level": 0})
    us = per_call_us(lambda: producer.produce(record.topic, record.value, record.key), 20_000)
    producer.purge()
    return us


def column_table() -> list[str]:
    messages, table = _sample.load("wide")
    from cdcd.decode.pgoutput import PgOutputDecoder

    decoder = PgOutputDecoder()
    row = next(m for m in map(decoder.decode, messages) if type(m).__name__ == "Insert").new  # type: ignore[attr-defined]
    options = EnvelopeOptions(topic_prefix="bench", database="bench", connector_version="0")
    type_options: TypeOptions = options.type_options()
    out = ["## 3. Wide table: value converter per column (µs per call, current code)", "",
           "| column | type | sample text | µs |", "|---|---|---|---:|"]
    total = 0.0
    for column, text in zip(table.columns, row):
        codec = column_codec(column, type_options, None, True)
        us = per_call_us(lambda: codec.convert(text))
        total += us
        sample = (text or "")[:34].replace("|", "\\|")
        out.append(f"| {column.name} | {column.type_name} | `{sample}` | {us:.2f} |")
    encoder = TableEncoder(table, options)
    image = encoder._image  # noqa: SLF001 - the row function itself
    out += [f"| **all 30 columns** | | | {total:.2f} |",
            f"| whole row image (`RowConverter`) | | | {per_call_us(lambda: image(row)):.2f} |"]
    return out


def float4_line(rows: int = 50_000) -> str:
    """µs per distinct ``real`` value, first pass and repeated, best of 5 (PostgreSQL's shortest texts)."""
    import random
    import struct

    from cdcd import native
    from cdcd.debezium.types import numeric
    from cdcd.source.tables import ColumnInfo

    def pg_text(value: float) -> str:
        f = struct.unpack("<f", struct.pack("<f", value))[0]
        return next(t for t in (f"{f:.{p}g}" for p in range(1, 10))
                    if struct.unpack("<f", struct.pack("<f", float(t)))[0] == f)

    rng = random.Random(5)
    values = [(pg_text(rng.uniform(-1000, 1000)),) for _ in range(rows)]
    encode = native.row_image([(column_codec(ColumnInfo("c", 0, "float4", -1, True, None, "b", None),
                                             TypeOptions()), 0)])
    first, again = [], []
    for _ in range(5):
        numeric.float4_value.cache_clear()
        first.append(min(timeit.repeat(lambda: [encode(v) for v in values], number=1, repeat=1)))
        again.append(min(timeit.repeat(lambda: [encode(v) for v in values], number=1, repeat=1)))
    return (f"float4 ({native.describe()}): {min(first) / rows * 1e6:.2f} µs per distinct value, "
            f"{min(again) / rows * 1e6:.2f} repeated ({Path(numeric.__file__).parent.parent.parent})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capture", action="store_true", help="capture the pgoutput sample (needs PostgreSQL)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=7, help="replay runs per shape")
    parser.add_argument("--cdcd-path", help="import cdcd from this directory instead (e.g. a mypyc build)")
    parser.add_argument("--replay-only", action="store_true", help="only the current code's replay, --pairs runs")
    parser.add_argument("--float4", action="store_true", help="only the cost of distinct real values")
    args = parser.parse_args()
    logs.configure("warning", "json")
    if args.float4:
        print(float4_line())
        return 0
    if args.capture:
        _sample.capture()
        return 0
    if args.replay_only:
        import cdcd

        for shape in ("narrow", "wide"):
            messages, table = _sample.load(shape)
            fr, n = _sample.frames(messages, args.events)
            replay_once(fr[: len(fr) // 10], table)
            runs = [replay_once(fr, table)[0] / n * 1e6 for _ in range(args.pairs)]
            print(f"{shape}: best {min(runs):.2f} µs/event, median {statistics.median(runs):.2f} "
                  f"({Path(cdcd.__file__).parent})")
        return 0
    parts = ["# cdcd hot-path micro-benchmarks", "",
             "Generated by `python3 bench/micro.py`; see docs/performance.md.", ""]
    parts += budget_table(args.events) + [""]
    parts += replay_table(args.events, args.pairs) + [""]
    parts += column_table()
    text = "\n".join(parts) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "micro.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
