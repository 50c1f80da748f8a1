"""The reader's consumer order (no database): tables interleave, markers stay Debezium's.

The queue is fed by hand, in the orders concurrent workers may produce, and
every outcome is checked against ``flag_rows`` (the one-table-after-the-other
reference): the same marker for every row, each table's rows in order,
``first`` first and ``last`` last.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdcd.snapshot import SnapshotReader, flag_rows
from cdcd.snapshot._reader import _END, _Chunk
from cdcd.snapshot._tables import TablePart
from cdcd.source.tables import TableInfo


class _Plan:
    def __init__(self, name: str) -> None:
        self.name = name
        self.estimate = None


def _table(i: int) -> TableInfo:
    return TableInfo(oid=i, schema="public", name=f"t{i}", columns=(), primary_key=())


def _reader(n: int, workers: int = 2) -> tuple[SnapshotReader, list[tuple[str, int, int | None]]]:
    progress: list[tuple[str, int, int | None]] = []
    reader = SnapshotReader("", None, None, [f"public.t{i}" for i in range(n)],
                            on_progress=lambda t, d, e: progress.append((t, d, e)))
    reader.plans = [_Plan(f"public.t{i}") for i in range(n)]  # type: ignore[misc]
    reader.parts = [TablePart(i, 0) for i in range(n)]
    reader._permits = [threading.Semaphore(0) for _ in range(workers)]
    return reader, progress


def _feed(reader: SnapshotReader, events: list[tuple[int, object]]) -> list[tuple[str, Any, str]]:
    for event in events:
        reader._queue.put(event)
    return [(table.name, item, flag) for table, item, flag in reader._ordered()]


def _events(sizes: list[int], chunk: int, tables: list[TableInfo]) -> list[list[tuple[int, object]]]:
    """Per table, what its worker puts: the table, its chunks, the end."""
    out = []
    for i, size in enumerate(sizes):
        rows = [f"{i}:{k}" for k in range(size)]
        events: list[tuple[int, object]] = [(i, tables[i])]
        events += [(i, _Chunk(rows[k:k + chunk], 0)) for k in range(0, size, chunk)]
        events.append((i, _END))
        out.append(events)
    return out


def _reference(sizes: list[int]) -> dict[str, str]:
    tables = [(i, [f"{i}:{k}" for k in range(n)]) for i, n in enumerate(sizes)]
    return {row: flag for _, row, flag in flag_rows(tables, len(tables))}


def _interleave(streams: list[list[tuple[int, object]]], data: st.DataObject) -> list[tuple[int, object]]:
    """The streams' events interleaved as ``data`` draws, each stream keeping its order."""
    merged: list[tuple[int, object]] = []
    cursors = [0] * len(streams)
    while any(c < len(e) for c, e in zip(cursors, streams)):
        live = [i for i, e in enumerate(streams) if cursors[i] < len(e)]
        i = data.draw(st.sampled_from(live))
        merged.append(streams[i][cursors[i]])
        cursors[i] += 1
    return merged


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(0, 7), min_size=1, max_size=5), chunk=st.integers(1, 4), data=st.data())
def test_any_interleaving_gives_debeziums_markers(sizes: list[int], chunk: int, data: st.DataObject) -> None:
    tables = [_table(i) for i in range(len(sizes))]
    per_table = _events(sizes, chunk, tables)
    merged = _interleave(per_table, data)
    reader, _ = _reader(len(sizes))
    reader._permits = [threading.Semaphore(0)]
    out = _feed(reader, merged)

    expected = _reference(sizes)
    assert {row: flag for _, row, flag in out} == expected and len(out) == len(expected)
    for i in range(len(sizes)):
        assert [row for name, row, _ in out if name == f"t{i}"] == [f"{i}:{k}" for k in range(sizes[i])]
    flags = [flag for _, _, flag in out]
    if "first" in flags:
        assert flags[0] == "first"
    if out:
        assert flags[-1] == "last" and flags.count("last") == 1
        if sizes[-1]:
            assert out[-1][1] == f"{len(sizes) - 1}:{sizes[-1] - 1}"


def test_tables_interleave_as_their_chunks_arrive() -> None:
    tables = [_table(i) for i in range(3)]
    reader, progress = _reader(3)
    out = _feed(reader, [
        (1, tables[1]), (1, _Chunk(["1a", "1b"], 1)),  # before the first table: waits for it
        (0, tables[0]), (0, _Chunk(["0a", "0b"], 0)),
        (1, _Chunk(["1c"], 1)), (0, _Chunk(["0c"], 0)), (2, tables[2]), (2, _Chunk(["2a", "2b"], 1)),
        (1, _END), (2, _END), (0, _END),
    ])
    assert out == [
        ("t0", "0a", "first"),
        ("t1", "1a", "first_in_data_collection"), ("t1", "1b", "true"),
        ("t0", "0b", "true"),
        ("t2", "2a", "first_in_data_collection"),
        ("t1", "1c", "last_in_data_collection"),
        ("t0", "0c", "last_in_data_collection"),
        ("t2", "2b", "last"),  # held back until every other table was done
    ]
    # every chunk's permit went back to the worker that fetched it
    assert [p._value for p in reader._permits] == [2, 3]  # type: ignore[attr-defined]
    assert ("public.t1", 3, None) in progress and ("public.t0", 0, None) in progress


def test_an_empty_last_table_makes_the_row_out_last_the_last() -> None:
    tables = [_table(i) for i in range(3)]
    reader, _ = _reader(3)
    out = _feed(reader, [
        (0, tables[0]), (0, _Chunk(["0a"], 0)), (0, _END),
        (1, tables[1]), (2, tables[2]), (2, _END), (1, _Chunk(["1a", "1b"], 1)), (1, _END),
    ])
    assert out == [("t0", "0a", "first"), ("t1", "1a", "first_in_data_collection"), ("t1", "1b", "last")]


def test_a_worker_failure_reaches_the_consumer_while_it_waits_for_the_first_table() -> None:
    tables = [_table(i) for i in range(2)]
    reader, _ = _reader(2)
    with pytest.raises(RuntimeError, match="boom"):
        _feed(reader, [(1, tables[1]), (1, _Chunk(["1a"], 1)), (0, RuntimeError("boom"))])


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=3), min_size=1, max_size=4),
       chunk=st.integers(1, 3), data=st.data())
def test_tables_read_in_parts_interleave_with_the_markers_of_their_order_out(
        sizes: list[list[int]], chunk: int, data: st.DataObject) -> None:
    """Parts of a table read by different workers interleave; each part keeps its order; markers as one stream."""
    tables = [_table(i) for i in range(len(sizes))]
    parts: list[TablePart] = []
    streams: list[list[tuple[int, object]]] = []
    part_rows: list[list[str]] = []
    for t, part_sizes in enumerate(sizes):
        start = 0
        for k, size in enumerate(part_sizes):
            unit = len(parts)
            parts.append(TablePart(t, k, last=k == len(part_sizes) - 1))
            rows = [f"{t}:{start + j}" for j in range(size)]
            part_rows.append(rows)
            start += size
            events: list[tuple[int, object]] = [(unit, tables[t])]
            events += [(unit, _Chunk(rows[j:j + chunk], unit % 2)) for j in range(0, size, chunk)]
            events.append((unit, _END))
            streams.append(events)
    merged = _interleave(streams, data)
    reader, _ = _reader(len(sizes), workers=2)
    reader.parts = parts
    out = _feed(reader, merged)

    emitted = [[row for name, row, _ in out if name == f"t{t}"] for t in range(len(sizes))]
    assert [sorted(rows) for rows in emitted] == [sorted(f"{t}:{k}" for k in range(sum(p)))
                                                   for t, p in enumerate(sizes)]
    for rows in part_rows:  # each part's rows in its order
        assert [r for r in emitted[int(rows[0].split(":")[0])] if r in rows] == rows if rows else True
    expected = {row: flag for _, row, flag in flag_rows(list(enumerate(emitted)), len(emitted))}
    assert {row: flag for _, row, flag in out} == expected
    if out:
        assert out[-1][2] == "last"
        assert "first" not in [f for _, _, f in out] or out[0][2] == "first"
