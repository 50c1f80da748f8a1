"""The pieces the proposals change, timed alone and checked against the current code (bench/micro.py, section 2)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime as _datetime, timedelta as _timedelta
from typing import Any

import _sample
from _proposals import (
    ALL,
    TxnSourceEncoder,
    _orig_interval_micros,
    _orig_parse_date,
    _orig_parse_time,
    _orig_timestamp_us,
    _unfrozen,
    applied,
    interval_micros_fast,
    parse_date_fast,
    parse_time_fast,
    timestamp_us_fast,
    timestamptz_parsing,
)

import cdcd.debezium.envelope as envelope
import cdcd.decode.messages as messages
import cdcd.debezium.types.temporal as temporal
from cdcd.debezium.envelope import SourceInfo, TableEncoder


def _timestamptz_corpus(n: int = 20_000) -> list[tuple[int, str]]:
    """(typmod, text) as PostgreSQL prints timestamptz(p) in UTC: fraction rounded to p digits, zeros trimmed."""
    rng = random.Random(7)
    out = []
    for _ in range(n):
        typmod = rng.choice([-1, 0, 1, 3, 5, 6])
        p = 6 if typmod < 0 else typmod
        us = rng.randrange(-62135596800, 253402300799) * 1_000_000 + rng.randrange(1_000_000)
        us -= us % 10 ** (6 - p)
        if rng.random() < 0.2:
            us -= us % 1_000_000
        dt = _datetime(1, 1, 1) + _timedelta(microseconds=us + 62135596800 * 1_000_000)
        frac = f"{dt.microsecond:06d}".rstrip("0")
        out.append((typmod, f"{dt:%Y-%m-%d %H:%M:%S}{'.' + frac if frac else ''}+00"))
    out += [(-1, "infinity"), (-1, "-infinity"), (-1, "0044-03-15 10:00:00+00 BC"), (-1, "10000-01-01 00:00:00+00"),
            (-1, "2024-01-01 10:00:00+05:30"), (3, "2024-01-01 10:00:00.5-04:56:02")]
    return out


def _check(name: str, pairs: list[tuple[Any, Any]]) -> str:
    bad = [(a, b) for a, b in pairs if a != b]
    return f"{len(pairs):,} inputs, all equal" if not bad else f"**{len(bad)} of {len(pairs)} differ**, e.g. {bad[0]}"


def function_table(per_call_us: Callable[[Callable[[], Any]], float]) -> list[str]:
    from cdcd.ops.metrics import Metrics
    from cdcd.decode.pgoutput import PgOutputDecoder

    out = ["## 2. The pieces alone (µs per call, best of 5; outputs compared with the current code)", "",
           "| piece | current | proposed | gain | equivalence |", "|---|---:|---:|---:|---|"]

    def row(name: str, old: Callable[[], Any], new: Callable[[], Any], check: str) -> None:
        a, b = per_call_us(old), per_call_us(new)
        out.append(f"| {name} | {a:.3f} | {b:.3f} | {(a - b) / a:+.0%} | {check} |")

    corpus = _timestamptz_corpus()
    conv = {t: (timestamptz_parsing(t), temporal.timestamptz(t).convert) for t in (-1, 0, 1, 3, 5, 6)}
    check = _check("timestamptz", [(conv[t][0](x), conv[t][1](x)) for t, x in corpus])
    sample = "2026-11-24 20:42:26.774806+00"
    row(f"(P1, landed) timestamptz `{sample}`: parse + format → current fast path",
        lambda: conv[-1][0](sample), lambda: conv[-1][1](sample), check)

    rng = random.Random(3)
    dates = [f"{rng.randrange(1, 10000):04d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
             for _ in range(5000)]
    dates += ["0044-03-15 BC", "10000-01-01", "infinity", "-infinity"]
    row("date `2024-01-02`", lambda: _orig_parse_date("2024-01-02"), lambda: parse_date_fast("2024-01-02"),
        _check("date", [(_orig_parse_date(d), parse_date_fast(d)) for d in dates]))
    times = [f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
             + (f".{rng.randrange(10**6):06d}".rstrip("0") if rng.random() < 0.5 else "") for _ in range(5000)]
    times += ["24:00:00", "00:00:00.5"]
    row("time `00:00:01`", lambda: _orig_parse_time("00:00:01"), lambda: parse_time_fast("00:00:01"),
        _check("time", [(_orig_parse_time(t), parse_time_fast(t)) for t in times]))
    stamps = [f"{d} {t}" for d, t in zip(dates[:5000], times)] + ["0044-03-15 10:00:00 BC", "infinity", "-infinity"]
    row("timestamp `2024-01-01 00:00:01`", lambda: _orig_timestamp_us("2024-01-01 00:00:01"),
        lambda: timestamp_us_fast("2024-01-01 00:00:01"),
        _check("timestamp", [(_orig_timestamp_us(s), timestamp_us_fast(s)) for s in stamps]))
    intervals = [f"{'-' if rng.random() < 0.2 else ''}{rng.randrange(200):02d}:{rng.randrange(60):02d}:"
                 f"{rng.randrange(60):02d}" + (f".{rng.randrange(10**6):06d}" if rng.random() < 0.5 else "")
                 for _ in range(5000)]
    intervals += ["1 year 2 mons 3 days 04:05:06", "-1 days +02:00:00", "3 days", "00:00:00"]
    row("interval `01:00:00`", lambda: _orig_interval_micros("01:00:00"), lambda: interval_micros_fast("01:00:00"),
        _check("interval", [(_orig_interval_micros(s), interval_micros_fast(s)) for s in intervals]))

    for shape in ("narrow", "wide"):
        msgs, _table = _sample.load(shape)
        current = PgOutputDecoder()
        with applied([p for p in ALL if p.name.startswith("P3")]):
            proposed = PgOutputDecoder()
        pairs = [(repr(current.decode(m)), repr(proposed.decode(m))) for m in msgs]
        change = next(m for m in msgs if m[:1] == b"I")
        row(f"decode one {shape} insert", lambda: current.decode(change), lambda: proposed.decode(change),
            _check("messages", pairs))

    rel, new = object(), ("1", "2")
    fast_insert = _unfrozen(messages.Insert)
    row("`Insert(...)` construction", lambda: messages.Insert(rel, new, None),  # type: ignore[arg-type]
        lambda: fast_insert(rel, new, None), "same fields")
    counter = Metrics(process_metrics=False).events_counter("public.t", "c")
    counts: dict[tuple[int, str], int] = {}
    key = (1, "c")
    row("count one event (Prometheus `inc` vs dict)", counter.inc,
        lambda: counts.__setitem__(key, counts.get(key, 0) + 1), "same totals once flushed")

    msgs, table = _sample.load("narrow")
    options = envelope.EnvelopeOptions(topic_prefix="bench", database="bench", connector_version="0")
    old_enc, new_enc = TableEncoder(table, options), TxnSourceEncoder(table, options)
    row_values = ("1", "1", "c4ca4238a0b923820dcc509a6f75849b", "2026-11-24 20:42:26.774806+00")
    shared = SourceInfo(ts_us=1795547161012799, txid=1771, lsn=162789640, last_commit_lsn=162789000)

    def fresh() -> Any:
        return old_enc.create(row_values, SourceInfo(ts_us=1795547161012799, txid=1771, lsn=162789640,
                                                     last_commit_lsn=162789000), None)

    def reused() -> Any:
        shared.lsn = 162789640
        return new_enc.create(row_values, shared, None)

    saved_ns = time.time_ns
    time.time_ns = lambda: 1795547161999000000  # type: ignore[assignment]
    try:
        same = [(fresh(), reused()) for _ in range(3)]
        other = SourceInfo(ts_us=1, txid=None, lsn=5, last_commit_lsn=None, origin="o", origin_lsn=7)
        same.append((old_enc.create(row_values, other, None), new_enc.create(row_values, other, None)))
    finally:
        time.time_ns = saved_ns  # type: ignore[assignment]
    row("narrow `create()` incl. SourceInfo", fresh, reused, _check("records", same))
    return out
