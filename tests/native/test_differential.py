"""The compiled core against the pure-Python reference: byte-identical row images, events and decoded tuples.

Values are generated as PostgreSQL prints them (every type the compiled core
converts natively, with the edge values: NaN, infinities, BC dates, huge
numerics, empty strings, escapes, non-ASCII) and as arbitrary text, which must
take the same fallback in both cores. Every (type, option mode) pair is covered.
"""

from __future__ import annotations

import itertools
import math
import random
import string
import struct
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdcd import native
from cdcd.debezium import envelope as envelope_mod
from cdcd.debezium.envelope import EnvelopeOptions, SourceInfo, TableEncoder, TransactionContext
from cdcd.debezium.types import TypeOptions, column_codec
from cdcd.debezium.types._schema import BINARY_MODES, DECIMAL_MODES, TIME_MODES
from cdcd.debezium.types.numeric import float4_value
from cdcd.debezium.types.row import RowConverter
from cdcd.decode.messages import UNCHANGED_TOAST
from cdcd.source.tables import ColumnInfo, TableInfo

pytestmark = pytest.mark.skipif(native._core is None, reason="the compiled core is not built (setup.py build_ext)")

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def numeric_typmod(precision: int, scale: int) -> int:
    return ((precision << 16) | scale) + 4


# --- PostgreSQL text output, per type ------------------------------------------------------

def _ints(bits: int) -> st.SearchStrategy[str]:
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1).map(str)


digits = st.text("0123456789", min_size=1, max_size=40)


@st.composite
def numerics(draw: Any, scale: int | None) -> str:
    """``numeric`` text: fixed ``scale`` digits when given, else any; big ones and the specials too."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "0", "-0", "0.00", "1e5", "1.5E-3"]))
    sign = draw(st.sampled_from(["", "", "-"]))
    whole = draw(digits).lstrip("0") or "0"
    frac_len = scale if scale is not None and draw(st.integers(0, 4)) else draw(st.integers(0, 6))
    frac = "".join(draw(st.lists(st.sampled_from(string.digits), min_size=frac_len, max_size=frac_len)))
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("inf", "Infinity").replace("nan", "NaN")),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "-0", "1e+308", "1.17549e-38", "3.4028235e+38"]),
)


@st.composite
def dates(draw: Any) -> str:
    special = draw(st.integers(0, 12))
    if special == 0:
        return draw(st.sampled_from(["infinity", "-infinity"]))
    bc = " BC" if special == 1 else ""
    year = draw(st.integers(1, 4713) if bc else st.one_of(st.integers(1, 9999), st.integers(10000, 294276)))
    return f"{year:04d}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}{bc}"


@st.composite
def clocks(draw: Any) -> str:
    hh, mm, ss = draw(st.integers(0, 24)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.sampled_from(["", ".5", ".123", ".123456", ".000001", ".1234567", ".999999"]))
    return f"{hh:02d}:{mm:02d}:{ss:02d}{frac}"


@st.composite
def timestamps(draw: Any, zone: bool) -> str:
    d = draw(dates())
    if d.endswith("infinity"):
        return d
    bc = d.endswith(" BC")
    text = f"{d.removesuffix(' BC')} {draw(clocks())}"
    if zone:
        text += draw(st.sampled_from(["+00", "+00", "+00", "+05:30", "-04:56:02", "+14", "-00"]))
    return text + (" BC" if bc else "")


texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=30),
    st.sampled_from(["", '"', "\\", "\x00", "\x1f\x7f", "é☃😀", "\u2028", "a\"b\\c\nd\te\rf\bg\fh"]),
)

@st.composite
def intervals(draw: Any) -> str:
    """IntervalStyle ``postgres``: ``1 year 2 mons -3 days +04:05:06.789`` and its partial forms."""
    parts = []
    for unit in ("year", "mon", "day"):
        if draw(st.booleans()):
            v = draw(st.one_of(st.integers(-100, 100), st.integers(-(10**17), 10**17)))
            parts.append(f"{v} {unit}{'' if abs(v) == 1 else 's'}")
    if draw(st.booleans()) or not parts:
        sign = draw(st.sampled_from(["", "-", "+"])) if parts else draw(st.sampled_from(["", "-"]))
        frac = draw(st.sampled_from(["", ".5", ".000001", ".123456", ".1234567"]))
        parts.append(f"{sign}{draw(st.integers(0, 2562047788)):02d}:{draw(st.integers(0, 59)):02d}:"
                     f"{draw(st.integers(0, 59)):02d}{frac}")
    return " ".join(parts)


TYPES: dict[str, tuple[int, Any]] = {
    # type name -> (typmod, strategy of its text output)
    "int2": (-1, _ints(16)), "int4": (-1, _ints(32)), "int8": (-1, _ints(64)),
    "oid": (-1, st.integers(0, (1 << 32) - 1).map(str)),
    "bool": (-1, st.sampled_from(["t", "f"])),
    "text": (-1, texts), "varchar": (20, texts), "bpchar": (5, texts), "name": (-1, texts),
    "uuid": (-1, st.uuids().map(str)),
    "json": (-1, st.sampled_from(['{"a": [1, 2.5, null]}', "[]", '"x\\u0000"', "{}"])),
    "jsonb": (-1, st.sampled_from(['{"a": [1, 2.5, null]}', "[]", '{"é": "\\n"}'])),
    "numeric(10,2)": (numeric_typmod(10, 2), numerics(2)),
    "numeric(38,0)": (numeric_typmod(38, 0), numerics(0)),
    "numeric(20,6)": (numeric_typmod(20, 6), numerics(6)),
    "numeric": (-1, numerics(None)),
    "float4": (-1, floats), "float8": (-1, floats),
    "date": (-1, dates()),
    "time": (-1, clocks()), "time(3)": (3, clocks()), "time(0)": (0, clocks()),
    "timetz": (-1, st.builds(lambda c, z: c + z, clocks(), st.sampled_from(["+00", "+05:30", "-08"]))),
    "timestamp": (-1, timestamps(False)), "timestamp(3)": (3, timestamps(False)), "timestamp(0)": (0, timestamps(False)),
    "timestamptz": (-1, timestamps(True)), "timestamptz(3)": (3, timestamps(True)),
    "timestamptz(0)": (0, timestamps(True)),
    "interval": (-1, intervals()),
    "bytea": (-1, st.binary(max_size=20).map(lambda b: "\\x" + b.hex())),
    "_int4": (-1, st.lists(st.one_of(_ints(32), st.just("NULL")), max_size=4).map(lambda v: "{" + ",".join(v) + "}")),
    "_int8": (-1, st.lists(st.one_of(_ints(64), st.just("NULL")), max_size=4).map(lambda v: "{" + ",".join(v) + "}")),
    "_bool": (-1, st.lists(st.sampled_from(["t", "f", "NULL"]), max_size=4).map(lambda v: "{" + ",".join(v) + "}")),
    "_numeric": (-1, st.lists(st.one_of(numerics(None), st.sampled_from(["NULL", "NaN", "Infinity", "-Infinity"])),
                              max_size=4).map(lambda v: "{" + ",".join(v) + "}")),
    "_numeric(10,2)": (numeric_typmod(10, 2), st.lists(st.one_of(numerics(2), st.just("NULL")), max_size=4).map(
        lambda v: "{" + ",".join(v) + "}")),
    "_float4": (-1, st.lists(st.one_of(floats, st.just("NULL")), max_size=4).map(lambda v: "{" + ",".join(v) + "}")),
    "_uuid": (-1, st.lists(st.uuids().map(str), max_size=3).map(lambda v: "{" + ",".join(v) + "}")),
    "_varchar": (-1, st.lists(texts, max_size=4).map(
        lambda v: "{" + ",".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in v) + "}")),
    "_text": (-1, st.lists(st.text(string.ascii_letters + ' ",\\', max_size=5), max_size=4).map(
        lambda v: "{" + ",".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in v) + "}")),
}

MODES = list(itertools.product(DECIMAL_MODES, TIME_MODES, BINARY_MODES))


def column(key: str, name: str = "c", optional: bool = True) -> ColumnInfo:
    type_name = key.split("(")[0]
    typmod = TYPES[key][0]
    base = type_name[1:] if type_name.startswith("_") else None
    return ColumnInfo(name, 0, type_name, typmod, optional, None, "b", base)


def images(columns: list[tuple[Any, int]]) -> tuple[RowConverter, Any]:
    return native.row_image(columns, core="python"), native.row_image(columns, core="compiled")


def assert_same(pure: RowConverter, compiled: Any, row: tuple[Any, ...]) -> None:
    expected = orjson.dumps(pure(row))
    got = compiled(row)
    assert got == expected, (row, expected, got)
    assert compiled.errors == pure.errors


def cell(strategy: Any) -> st.SearchStrategy[Any]:
    """A tuple value: the type's text mostly, else NULL, unchanged TOAST, binary format or arbitrary text."""
    return st.one_of(
        strategy, strategy, strategy,
        st.none(), st.just(UNCHANGED_TOAST), strategy.map(lambda t: t.encode()), st.binary(max_size=6), st.text(max_size=8),
    )


# --- one column at a time, every type in every mode ----------------------------------------

@pytest.mark.parametrize("key", sorted(TYPES))
@pytest.mark.parametrize(("decimal", "time", "binary"), [
    ("precise", "adaptive", "bytes"), ("string", "connect", "hex"), ("double", "adaptive_time_microseconds", "base64"),
    ("precise", "connect", "base64-url-safe"),
])
def test_each_type_and_mode(key: str, decimal: str, time: str, binary: str) -> None:
    options = TypeOptions(decimal_handling_mode=decimal, time_precision_mode=time, binary_handling_mode=binary)
    for optional in (True, False):
        codec = column_codec(column(key, optional=optional), options)
        pure, compiled = images([(codec, 0)])

        @SETTINGS
        @given(cell(TYPES[key][1]))
        def check(value: Any) -> None:
            assert_same(pure, compiled, (value,))
        check()


@pytest.mark.parametrize(("decimal", "time", "binary"), MODES)
def test_every_mode_on_a_row_of_every_type(decimal: str, time: str, binary: str) -> None:
    options = TypeOptions(decimal_handling_mode=decimal, time_precision_mode=time, binary_handling_mode=binary,
                          snapshot_reads=decimal == "double")
    keys = sorted(TYPES)
    codecs = [(column_codec(column(k, f"c{i}", optional=i % 2 == 0), options), i) for i, k in enumerate(keys)]
    pure, compiled = images(codecs)

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.tuples(*(cell(TYPES[k][1]) for k in keys)))
    def check(row: tuple[Any, ...]) -> None:
        assert_same(pure, compiled, row)
    check()


# --- edge values, spelled out -----------------------------------------------------------------

EDGES = {
    "int8": ["-9223372036854775808", "9223372036854775807", "0", "-0", "007", "+1", " 1", "1_0", "١٢"],
    "numeric(10,2)": ["-0.00", "0.00", "12345678.90", "-99999999.99", "1.5", "1", "NaN", "Infinity", "1e3",
                      "99999999999999999.99", "9999999999999999.99", "-999999999999999999", ".5", "5.", "1.2.3"],
    "numeric(38,0)": ["99999999999999999999999999999999999999", "-1", "0", "123456789012345678", "-128", "127",
                      "128", "-129", "255", "256", "32767", "-32768", "32768"],
    "numeric": ["NaN", "0", "-0.000", "1.10", "123456789012345678901234567890.5", "1e-7", "-0", "0.0", "007.5",
                "100", "1.000000000000000000", "-999999999999999999", "0.000000000000000001", "1.", ".5", "-", ""],
    "date": ["1970-01-01", "0001-01-01", "0001-01-01 BC", "0044-03-15 BC", "9999-12-31", "10000-01-01",
             "infinity", "-infinity", "2024-02-29", "1582-10-15", "0000-03-01", "2024-13-40"],
    "timestamp": ["1970-01-01 00:00:00", "1969-12-31 23:59:59.999999", "0001-01-01 00:00:00 BC",
                  "294276-12-31 23:59:59.999999", "infinity", "-infinity", "2024-01-01 24:00:00", "2024-01-01 00:00",
                  "2024-01-01 00:00:00.", "2024-01-01 00:00:00.1234567891"],
    "timestamp(3)": ["1969-12-31 23:59:59.9995", "1969-12-31 23:59:59.0001", "0001-01-01 00:00:00 BC"],
    "timestamptz": ["2024-01-01 00:00:00+00", "2024-01-01 00:00:00.5+00", "2024-01-01 00:00:00.123456+00",
                    "2024-01-01 00:00:00+05:30", "0044-03-15 12:00:00+00 BC", "10000-01-01 00:00:00+00",
                    "infinity", "-infinity", "2024-01-01 00:00:00.+00", "2024-01-01 00:00:00-00"],
    "timestamptz(0)": ["2024-01-01 00:00:00+00", "2024-01-01 00:00:00.5+00"],
    "timestamptz(3)": ["2024-01-01 00:00:00+00", "2024-01-01 00:00:00.123456+00", "2024-01-01 00:00:00.1+00"],
    "time": ["00:00:00", "24:00:00", "23:59:59.999999", "12:34", "12:34:56.1234567"],
    "time(3)": ["23:59:59.9999", "00:00:00.0005"],
    "timetz": ["24:00:00-14", "23:59:59.999999+14", "12:00:00-12:30", "00:00:00+05:30:15", "10:11:12.5Z", "10:11:12",
               "00:00:00+00", "23:59:59.1200+00", "00:00:00.000001-00:00:01", "12:00+01", "12:00:00+0530", "12:00:00+5",
               "12:00:00.1234567+01", "12:00:00.+01", "x2:00:00+01", "12:00:00+01:3", "12:00:00++01"],
    "text": ["", "\x00", '"\\', "\x7f", "é☃😀", "\ud7ff"],
    "bool": ["t", "f", "true", "T", "x", ""],
    "float8": ["0", "-0", "1e+16", "1e+15", "1e-05", "1e-07", "0.0001", "5e-324", "1.7976931348623157e+308",
               "1e+309", "-1e+309", "NaN", "Infinity", "-Infinity", "1.5", "100", "1E5", "1e", ".5", "1.", "0x10",
               "1_0", " 1", "9007199254740993", "123456789012345680000", "2.5e-05", "-", "+1"],
    "float4": ["3.4028235e+38", "1.1754944e-38", "1.4e-45", "0.1", "-0", "NaN", "16777217"],
    "_int4": ["{}", "{NULL}", "{1,NULL,3}", "{{1,2},{3,4}}", "[0:1]={1,2}", "{1,,2}", "{1,2,}", "{,1}", "{01}",
              '{"1","2"}', '{"1"x,"2"}', '{"1}', "{a}", "1,2", "{1, 2}", "{-0}"],
    "_text": ["{}", "{NULL}", '{"NULL"}', '{"a,b","c\\"d"}', '{"a"x"b"}', '{"unterminated}', "{a\\b}", "{é,☃}",
              '{""}', '{"",""}', "{a,,b}", "{a,b,}", '{"a\\\\"}', '{"x\\', "{{a},{b}}", '{"\u0000"}'],
    "bytea": ["\\x", "\\x00ff", "\\xABCD", "\\x0", "\\xzz", "abc\\\\\\012", "\\x" + "ab" * 40, ""],
    "interval": ["00:00:00", "-00:00:00.000001", "1 year", "1 years2 mons", "178000000 years", "-1 days +02:03:00",
                 "1 mon 00:00:00.1234567", " 1 day", "1 day ", "", "1 day 1:00:00", "2562047788:00:54.775807",
                 "-2562047788:00:54.775808", "1000000000000000 days", "1 year 2 mons 3 days 04:05:06.789", "P1D"],
}


@pytest.mark.parametrize("key", sorted(EDGES))
@pytest.mark.parametrize("time", TIME_MODES)
def test_edge_values(key: str, time: str) -> None:
    for decimal, binary in zip(DECIMAL_MODES + ("precise",), BINARY_MODES):
        options = TypeOptions(decimal_handling_mode=decimal, time_precision_mode=time, binary_handling_mode=binary)
        codec = column_codec(column(key), options)
        pure, compiled = images([(codec, 0)])
        for text in EDGES[key]:
            assert_same(pure, compiled, (text,))


def test_short_rows_empty_images_and_kinds() -> None:
    codecs = [(column_codec(column("int4", "a"), TypeOptions()), 0), (column_codec(column("text", "b"), TypeOptions()), 5)]
    pure, compiled = images(codecs)
    assert_same(pure, compiled, ("1",))  # index beyond the tuple: the column's NULL value
    assert images([])[1](("1",)) == b"{}" == orjson.dumps(images([])[0](("1",)))
    kinds = {k: native.native_kind(column_codec(column(k), TypeOptions()).convert)[0] for k in TYPES}
    assert kinds["int8"] == "int" and kinds["text"] == "str" and kinds["numeric(10,2)"] == "decimal"
    assert kinds["timestamptz"] == "zoned" and kinds["date"] == "date" and kinds["float8"] == "float"
    assert kinds["_int4"] == "array" and kinds["_text"] == "array" and kinds["bytea"] == "bytea"
    assert kinds["interval"] == "interval" and kinds["numeric"] == "decimal_var" and kinds["float4"] == "float4"
    assert kinds["timetz"] == "timetz" and kinds["_numeric"] == kinds["_numeric(10,2)"] == "array"


def float4_text(f: float) -> str:
    """PostgreSQL's float4 text of ``f`` rounded to a float: the shortest digits that read back as it."""
    f = struct.unpack("<f", struct.pack("<f", f))[0]
    for digits in range(1, 10):
        text = f"{f:.{digits}g}"
        try:
            if struct.unpack("<f", struct.pack("<f", float(text)))[0] == f:
                return text
        except OverflowError:  # rounded up past the largest float
            continue
    raise AssertionError(f)


def test_float4_takes_javas_digits_on_both_cores() -> None:
    """Java 17's Float.toString digits: the compiled core's int and long arithmetic (big integers
    go to Python) against java_float.py, over every exponent and PostgreSQL-style texts."""
    rng = random.Random(16)
    floats = [struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0] for _ in range(20_000)]
    floats += [struct.unpack("<f", struct.pack("<f", rng.uniform(-10.0 ** e, 10.0 ** e)))[0]
               for e in range(-6, 12) for _ in range(300)]
    texts = [float4_text(f) for f in floats if math.isfinite(f)]
    texts += ["9.53e+09", "16777216", "16777218", "3.4028235e+38", "1.4e-45", "1e-45", "1.1754944e-38", "-0",
              "0", "0.000", "123456789", "1e-05", "0.001", "1e+07", "1.0000001", "-9.60045e+16", "1.e5", "1e",
              "1e+39", "1e-46", "3.4028236e+38"]
    codec = column_codec(column("float4"), TypeOptions())
    pure, compiled = images([(codec, 0)])
    for text in texts:
        float4_value.cache_clear()  # the python side computes every value
        assert_same(pure, compiled, (text,))


def test_conversion_errors_count_the_same() -> None:
    codec = column_codec(column("numeric(10,2)"), TypeOptions())
    pure, compiled = images([(codec, 0)])
    for text in ("NaN", "garbage", b"\xff", "1.00"):
        assert_same(pure, compiled, (text,))
    assert compiled.errors == pure.errors == 3


# --- whole events through TableEncoder ------------------------------------------------------

def table() -> TableInfo:
    keys = ["int8", "text", "numeric(10,2)", "timestamptz", "float8", "date", "bytea", "uuid", "_int4", "bool"]
    cols = tuple(column(k, f"c_{k.replace('(', '_').replace(')', '').replace(',', '_')}", optional=i > 0)
                 for i, k in enumerate(keys))
    return TableInfo(16384, "public", "t", cols, (cols[0].name, cols[1].name))


def assert_same_records(pure: list[Any], compiled: list[Any]) -> None:
    """The key's payload is a dict on one core and its JSON bytes on the other: compare what it says."""
    assert [r._replace(key_payload=r.key_fields) for r in pure] == \
        [r._replace(key_payload=r.key_fields) for r in compiled]


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope_mod.time, "time_ns", lambda: 1_700_000_000_123_456_789)


def encoders(monkeypatch: pytest.MonkeyPatch, options: EnvelopeOptions) -> tuple[TableEncoder, TableEncoder]:
    monkeypatch.setattr(native, "CORE", "python")
    pure = TableEncoder(table(), options)
    monkeypatch.setattr(native, "CORE", "compiled")
    compiled = TableEncoder(table(), options)
    return pure, compiled


ROWS = st.tuples(*(cell(TYPES[k][1]) for k in
                   ["int8", "text", "numeric(10,2)", "timestamptz", "float8", "date", "bytea", "uuid", "_int4", "bool"]))


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize(("decimal", "time", "binary"), MODES[::4])
def test_events_are_byte_identical(monkeypatch: pytest.MonkeyPatch, decimal: str, time: str, binary: str) -> None:
    options = EnvelopeOptions("srv", "db", "3.6.3.Final", decimal_handling_mode=decimal, time_precision_mode=time,
                              binary_handling_mode=binary)
    pure, compiled = encoders(monkeypatch, options)

    @SETTINGS
    @given(ROWS, ROWS, st.sampled_from([None, "K", "O"]))
    def check(old: tuple[Any, ...], new: tuple[Any, ...], old_kind: str | None) -> None:
        source = SourceInfo(ts_us=1_700_000_000_000_001, txid=7, lsn=1234, last_commit_lsn=1000)
        runs = []
        for encoder in (pure, compiled):
            txn = TransactionContext(7, 999, 1_700_000_000_000)
            runs.append(
                encoder.create(new, source, txn)
                + encoder.update(old_kind, None if old_kind is None else old, new, source, txn)
                + encoder.delete(old_kind or "K", old, source, txn)
                + encoder.truncate(source, txn)
                + encoder.create(new, replace(source, snapshot="true"), None, "r")
            )
        assert_same_records(runs[0], runs[1])
        assert pure.conversion_errors == compiled.conversion_errors
    check()


SOURCES = st.builds(
    SourceInfo,
    ts_us=st.one_of(st.integers(0, 2**62), st.integers(-(2**62), 2**62), st.just(1_700_000_000_000_001)),
    txid=st.one_of(st.none(), st.integers(0, 2**64)),
    lsn=st.integers(0, 2**64 - 1),
    last_commit_lsn=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    snapshot=st.sampled_from(["false", "true", "first", "last", "incremental", "odd\"one"]),
    origin=st.one_of(st.none(), st.text(max_size=5)),
    origin_lsn=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    lsn_null=st.booleans(),
)


@pytest.mark.usefixtures("frozen_clock")
@SETTINGS
@given(SOURCES, st.booleans(), st.sampled_from(["c", "u", "d", "r"]))
def test_value_frames_match_for_any_source(source: SourceInfo, in_txn: bool, op: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        pure, compiled = encoders(monkeypatch, EnvelopeOptions("sr\u00e9v", "d\"b", "3.6.3.Final"))
    row = ("1", "a", "1.00", None, "0.5", "2024-01-01", None, None, "{1}", "t")
    values = []
    for encoder in (pure, compiled):
        txn = TransactionContext(7, 999, 1) if in_txn else None
        values.append([encoder._value(None, encoder._image(row), source, txn, op),
                       encoder._value(encoder._image(row), None, source, txn, op)])
    assert values[0] == values[1]


@pytest.mark.usefixtures("frozen_clock")
def test_key_changes_match(monkeypatch: pytest.MonkeyPatch) -> None:
    pure, compiled = encoders(monkeypatch, EnvelopeOptions("srv", "db", "3.6.3.Final"))
    source = SourceInfo(ts_us=1, txid=1, lsn=2, last_commit_lsn=None)
    old = ("1", "a", "1.00", None, "NaN", None, None, None, None, "t")
    for new_key in (("1", "a"), ("2", "a"), ("1", "b"), ("1", UNCHANGED_TOAST), (None, "a")):
        new = new_key + old[2:]
        assert_same_records(pure.update("O", old, new, source, None), compiled.update("O", old, new, source, None))
