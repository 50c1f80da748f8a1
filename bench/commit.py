"""How long one Kafka commit takes through cdcd's sink, on a given broker.

    python3 bench/commit.py --bootstrap-servers 127.0.0.1:9092                 # p50/p90/p99 per case
    python3 bench/commit.py --bootstrap-servers 127.0.0.1:9092 --without-copy  # before/after comparison

Each round sends one 500-byte event, waits ``gap`` ms (0: commit at once, as an idle
database does; 3: the event's produce has returned, as under load), sends the offsets
record and times ``KafkaSink.commit``. ``--without-copy`` clears the sink's remembered
offsets record after every commit, so no transaction opens with the copy that registers
the offsets partition early (docs/delivery.md): the commit then pays that registration.
The embedded mock broker answers at once; the figures mean something on a real one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdcd.debezium.envelope import Record  # noqa: E402
from cdcd.delivery.offsets import OffsetStore, SourceOffset  # noqa: E402
from cdcd.delivery.sinks.kafka import KafkaSink  # noqa: E402
from tests.fix_kafka import create_topic  # noqa: E402


def commit_times(bootstrap: str, gap_s: float, rounds: int, without_copy: bool) -> list[float]:
    prefix = f"commit{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, f"{prefix}.offsets", 1)
    create_topic(bootstrap, f"{prefix}.t", 1)
    store = OffsetStore(f"{prefix}.offsets", prefix, "bench")
    sink = KafkaSink(bootstrap, f"{prefix}-tid", timeout_s=20)
    sink.start()
    times = []
    try:
        for i in range(rounds):
            sink.send(Record(f"{prefix}.t", b'{"id":1}', b"x" * 500))
            time.sleep(gap_s)
            sink.send(store.record(SourceOffset(100 + i, i)))
            started = time.perf_counter()
            sink.commit()
            times.append((time.perf_counter() - started) * 1000)
            if without_copy:
                sink._committed_offsets = None  # noqa: SLF001 - the comparison this benchmark exists for
            time.sleep(0.005)
    finally:
        sink.close()
    return times[rounds // 10:]  # warm-up: connections, coordinator lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--gaps", default="0,3", help="ms between the event and the commit, comma-separated")
    parser.add_argument("--without-copy", action="store_true", help="no transaction opens with the offsets copy")
    args = parser.parse_args()
    for gap in (float(g) for g in args.gaps.split(",")):
        q = statistics.quantiles(commit_times(args.bootstrap_servers, gap / 1000, args.rounds, args.without_copy),
                                 n=100)
        print(f"gap {gap:g} ms{' without copy' if args.without_copy else ''}: commit p50 {q[49]:.2f} ms, "
              f"p90 {q[89]:.2f} ms, p99 {q[98]:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
