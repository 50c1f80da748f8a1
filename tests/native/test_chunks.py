"""The GIL-free snapshot chunk encoder against the python path: the same records for any result set.

A ``PGresult`` is built with libpq itself (``PQmakeEmptyPGresult`` / ``PQsetvalue``,
from the libpq psycopg loaded) holding generated text values of every type
the compiled core converts, plus arbitrary text; the records of
``TableEncoder.snapshot_chunks`` must equal ``create(row, source, None, "r")``
of the pure-Python core on the same rows, except the processing time.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdcd import native
from cdcd.debezium.envelope import EnvelopeOptions, Record, SourceInfo, TableEncoder
from cdcd.source.tables import TableInfo
from tests.native.test_differential import MODES, TYPES, column

pytestmark = pytest.mark.skipif(native._core is None, reason="the compiled core is not built (setup.py build_ext)")

import psycopg  # noqa: E402,F401 - loads the libpq the core binds

_TAIL = re.compile(rb',"op":"r","ts_ms":(\d+),"ts_us":(\d+),"ts_ns":(\d+)}}$')


class _AttDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("tableid", ctypes.c_uint), ("columnid", ctypes.c_int),
                ("format", ctypes.c_int), ("typid", ctypes.c_uint), ("typlen", ctypes.c_int),
                ("atttypmod", ctypes.c_int)]


def _libpq() -> ctypes.CDLL:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        (path,) = {line.split()[-1] for line in maps if "/libpq" in line and ".so" in line}
    lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_NOW)
    lib.PQmakeEmptyPGresult.restype = ctypes.c_void_p
    lib.PQmakeEmptyPGresult.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.PQsetResultAttrs.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_AttDesc)]
    lib.PQsetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.PQclear.argtypes = [ctypes.c_void_p]
    return lib


@contextmanager
def pgresult(rows: list[tuple[bytes | None, ...]], ncols: int) -> Iterator[int]:
    """A PGRES_TUPLES_OK result of ``ncols`` text columns holding ``rows``; its address."""
    lib = _libpq()
    res = lib.PQmakeEmptyPGresult(None, 2)
    try:
        names = [f"c{i}".encode() for i in range(ncols)]
        descs = (_AttDesc * max(ncols, 1))(*[_AttDesc(n, 0, 0, 0, 25, -1, -1) for n in names])
        assert lib.PQsetResultAttrs(res, ncols, descs) == 1
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                assert lib.PQsetvalue(res, r, c, value, -1 if value is None else len(value)) == 1
        yield res
    finally:
        lib.PQclear(res)


def encoders(table: TableInfo, options: EnvelopeOptions) -> tuple[TableEncoder, TableEncoder]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "CORE", "python")
        pure = TableEncoder(table, options)
        patch.setattr(native, "CORE", "compiled")
        compiled = TableEncoder(table, options)
    return pure, compiled


def chunks_of(encoder: TableEncoder, source: SourceInfo) -> Any:
    """``encoder.snapshot_chunks(source)`` as the compiled core makes it, whatever CDCD_CORE says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "CORE", "compiled")
        patch.setattr(native, "_text_rows", False)
        return encoder.snapshot_chunks(source)


def untimed(record: Record) -> Record:
    """The record without its processing time (checked for consistency, then cut)."""
    assert record.value is not None
    match = _TAIL.search(record.value)
    assert match, record.value[-80:]
    ms, us, ns = (int(g) for g in match.groups())
    assert ms == ns // 1_000_000 and us == ns // 1000
    return Record(record.topic, record.key, record.value[:match.start()], record.headers, record.table,
                  record.key_fields, record.lsn, record.txid)  # key_payload: bytes or dict, key_fields: the dict


def assert_same_records(pure: TableEncoder, compiled: TableEncoder, rows: list[tuple[str | None, ...]],
                        source: SourceInfo) -> None:
    expected = [untimed(pure.create(row, source, None, "r")[0]) for row in rows]
    chunks = chunks_of(compiled, source)
    assert chunks is not None
    ncols = len(rows[0]) if rows else 0
    with pgresult([tuple(None if v is None else v.encode() for v in row) for row in rows], ncols) as res:
        got = [untimed(r) for r in chunks(res)]
    assert got == expected
    assert compiled.conversion_errors == pure.conversion_errors


def values(strategy: Any) -> st.SearchStrategy[str | None]:
    """Snapshot values: the type's text mostly, else NULL or arbitrary text."""
    return st.one_of(strategy, strategy, strategy, st.none(), st.text(max_size=8))


SOURCE = SourceInfo(ts_us=1_700_000_000_000_001, txid=7, lsn=1234, last_commit_lsn=None, snapshot="true")
KEYS = sorted(TYPES)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wide_table(key: tuple[str, ...]) -> TableInfo:
    cols = tuple(column(k, f"c{i}", optional=i % 2 == 0 and k not in key) for i, k in enumerate(KEYS))
    return TableInfo(16384, "public", "every", cols, tuple(f"c{KEYS.index(k)}" for k in key))


@pytest.mark.parametrize(("decimal", "time", "binary"), MODES[::3])
def test_chunks_of_every_type_equal_the_python_records(decimal: str, time: str, binary: str) -> None:
    options = EnvelopeOptions("srv", "d\"b", "3.6.3.Final", decimal_handling_mode=decimal,
                              time_precision_mode=time, binary_handling_mode=binary, snapshot_reads=True)
    pure, compiled = encoders(wide_table(("int8", "text")), options)

    @SETTINGS
    @given(st.lists(st.tuples(*(values(TYPES[k][1]) for k in KEYS)), max_size=12))
    def check(rows: list[tuple[str | None, ...]]) -> None:
        assert_same_records(pure, compiled, rows, SOURCE)
    check()


@pytest.mark.parametrize("key", [(), ("int4",), ("uuid", "int2"), ("numeric(10,2)",)])
def test_keys_and_keyless_tables(key: tuple[str, ...]) -> None:
    pure, compiled = encoders(wide_table(key), EnvelopeOptions("srv", "db", "3.6.3.Final", snapshot_reads=True))

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(*(values(TYPES[k][1]) for k in KEYS)), min_size=1, max_size=6))
    def check(rows: list[tuple[str | None, ...]]) -> None:
        assert_same_records(pure, compiled, rows, SOURCE)
    check()


def test_floats_short_and_long_and_conversion_errors() -> None:
    table = TableInfo(1, "public", "f", (column("int8", "id", optional=False), column("float8", "x"),
                                         column("float4", "y"), column("numeric(10,2)", "z")), ("id",))
    pure, compiled = encoders(table, EnvelopeOptions("srv", "db", "3.6.3.Final", snapshot_reads=True))
    texts = ["0", "-0", "0.5", "1e-05", "1.5e+300", "1e+301", "123456789012345", "1234567890123456",
             "0.1", "0.30000000000000004", "5e-324", "1.7976931348623157e+308", "NaN", "-Infinity", "1E5",
             "0.000", "100", "1e16", "1e+16", "12345678901234567890", "-1.25e-7", "x",
             "5.9604644775390625e-08", "0.1111111111111111", "2.2250738585072014e-308", "1e-310",
             "9007199254740993", "0.30000000000000004e10", "1.0000000000000002"]  # ties, powers of two, subnormals
    rows = [(str(i), t, t, "garbage" if i % 5 == 0 else "1.00") for i, t in enumerate(texts)]
    assert_same_records(pure, compiled, rows, SOURCE)
    assert compiled.conversion_errors > 0


def test_slices_of_a_result() -> None:
    table = TableInfo(1, "public", "t", (column("int8", "id", optional=False), column("numeric", "x")), ("id",))
    pure, compiled = encoders(table, EnvelopeOptions("srv", "db", "3.6.3.Final", snapshot_reads=True))
    chunks = chunks_of(compiled, SOURCE)
    rows = [(str(i), "NaN" if i % 4 == 0 else f"{i}.5") for i in range(10)]  # NaN: a hole, filled with the GIL
    expected = [untimed(pure.create(row, SOURCE, None, "r")[0]) for row in rows]
    with pgresult([tuple(v.encode() for v in row) for row in rows], 2) as res:
        for start, stop in ((0, -1), (0, 10), (2, 5), (9, 10), (4, 4), (7, 99)):
            assert [untimed(r) for r in chunks(res, start, stop)] == expected[start:stop if stop >= 0 else None]


def test_snapshot_dates_around_the_gregorian_cutover() -> None:
    table = TableInfo(1, "public", "d", (column("int8", "id", optional=False), column("date", "d")), ("id",))
    pure, compiled = encoders(table, EnvelopeOptions("srv", "db", "3.6.3.Final", snapshot_reads=True))
    texts = ["1582-10-15", "1582-10-14", "1582-10-05", "1582-10-04", "0001-01-01", "1000-01-01 BC", "2024-02-29",
             "infinity", "-infinity", "9999-12-31", "2024-1-1"]
    assert_same_records(pure, compiled, [(str(i), t) for i, t in enumerate(texts)], SOURCE)


def test_invalid_utf8_raises_as_text_rows_does() -> None:
    table = TableInfo(1, "public", "t", (column("int8", "id", optional=False), column("text", "s")), ("id",))
    _, compiled = encoders(table, EnvelopeOptions("srv", "db", "3.6.3.Final", snapshot_reads=True))
    chunks = chunks_of(compiled, SOURCE)
    assert chunks is not None
    with pgresult([(b"1", b"ok \xc3\xa9"), (b"2", b"bad \xff")], 2) as res, pytest.raises(UnicodeDecodeError):
        chunks(res)


def test_a_key_left_to_python_means_no_chunk_encoder() -> None:
    table = TableInfo(1, "public", "t", (column("float8", "x", optional=False),), ("x",))
    _, compiled = encoders(table, EnvelopeOptions("srv", "db", "3.6.3.Final"))
    assert chunks_of(compiled, SOURCE) is None  # floats are not exact keys: create() per row instead


def test_threads_encode_at_once_with_their_own_encoders() -> None:
    """Each thread owns its encoder; the results are those of one thread alone."""
    table = wide_table(("int8",))
    options = EnvelopeOptions("srv", "db", "3.6.3.Final", snapshot_reads=True)
    rows = [tuple(None if (i + j) % 7 == 0 else text for j, text in enumerate(sample(i))) for i in range(300)]
    pure, _ = encoders(table, options)
    expected = [untimed(pure.create(row, SOURCE, None, "r")[0]) for row in rows]
    outputs: list[list[Record]] = []
    # Made here, one per thread: encoders() and chunks_of() switch the module-wide core, which
    # threads doing it at once would race on.
    owned = [chunks_of(encoders(table, options)[1], SOURCE) for _ in range(3)]
    assert all(chunks is not None for chunks in owned)
    with pgresult([tuple(None if v is None else v.encode() for v in row) for row in rows], len(KEYS)) as res:
        def run(chunks: Any) -> None:
            for _ in range(20):
                outputs.append([untimed(r) for r in chunks(res)])
        threads = [threading.Thread(target=run, args=(chunks,)) for chunks in owned]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(outputs) == 60 and all(out == expected for out in outputs)


def sample(i: int) -> list[str]:
    """One row of plausible values for ``KEYS``, varying with ``i``."""
    return [_plain(k, i) for k in KEYS]


def _plain(key: str, i: int) -> str:
    plain = {
        "bool": "t" if i % 2 else "f", "bytea": "\\x00ff" + f"{i % 256:02x}", "date": f"2024-01-{i % 28 + 1:02d}",
        "float4": f"{i}.25", "float8": repr(1 / (i + 1)), "interval": f"{i} days 01:02:03.5",
        "json": '{"a": 1}', "jsonb": '{"b": [1, 2]}', "numeric": f"{i}.125", "numeric(10,2)": f"{i}.50",
        "numeric(20,6)": f"{i}.000001", "numeric(38,0)": str(i * 10**20), "oid": str(i), "text": f"t é {i}",
        "time": "12:00:00.5", "time(0)": "12:00:00", "time(3)": "12:00:00.123",
        "timestamp": "2024-01-01 00:00:00.5", "timestamp(0)": "2024-01-01 00:00:00",
        "timestamp(3)": "2024-01-01 00:00:00.123", "timestamptz": "2024-01-01 00:00:00.5+00",
        "timestamptz(0)": "2024-01-01 00:00:00+00", "timestamptz(3)": "2024-01-01 00:00:00.123+00",
        "timetz": "12:00:00+00", "uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "varchar": f"v{i}",
        "bpchar": "ab   ", "name": "n", "int2": str(i % 30000), "int4": str(i), "int8": str(i * 1000003),
        "_int4": "{1,NULL,3}", "_int8": "{1}", "_bool": "{t,f}", "_uuid": "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "_varchar": '{"a b","c"}', "_text": "{x,y}", "_float4": f"{{{i}.5,NULL}}", "_numeric": f"{{{i}.125,NULL}}",
        "_numeric(10,2)": f"{{{i}.50}}",
    }
    return plain[key]
