"""The compiled lanes against the general path: the same records, counts and positions, whatever the changes.

Each case runs one ``StreamingSession`` twice over the same frames, once with the
lanes (``cdcd.session.lanes``) and once without, with the clock frozen, and
compares every record sent, the per-table event counts and the positions
reported. The frames are the recorded capture under several option sets, and
generated transactions of inserts, updates (with and without old tuples,
unchanged TOAST values, new primary keys) and deletes with arbitrary values.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdcd import config as config_mod
from cdcd import native
from cdcd.debezium import envelope as envelope_mod
from cdcd.debezium.envelope import Record
from cdcd.decode.messages import Relation
from cdcd.decode.pgoutput import PgOutputDecoder
from cdcd.delivery.tracker import LsnTracker
from cdcd.errors import DecodeError
from cdcd.ops.health import Health
from cdcd.ops.metrics import Metrics
from cdcd.pipeline import Stats, StreamingSession
from cdcd.session.build import SessionStart, Surfaces, build_parts
from cdcd.session.lanes import Lanes
from cdcd.session.transaction import OpenTransaction
from cdcd.wire.frames import XLogData
from tests.fake_stream import IDLE, FakeCatalog, FakeSink, FakeStream, Step, captured, keepalive
from tests.pgoutput_captures import records as payloads

pytestmark = pytest.mark.skipif(native.CORE != "compiled", reason="the lanes exist on the compiled core only")

NOW_NS = 1_700_000_000_123_456_789
START = 22_000_000


class CountingCore:
    """Stands in for ``ChangeLanes`` and counts the frames it took whole (so a case cannot pass vacuously)."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self.taken = 0

    def change(self, data: Any) -> Any:
        records = self._core.change(data)
        if records is not None:
            self.taken += 1
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_core", "taken"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._core, name, value)


def session_output(script: list[Step], lanes: bool, monkeypatch: pytest.MonkeyPatch,
                   **overrides: Any) -> tuple[Any, ...]:
    """Records committed (key payloads as dicts), event counters, status updates, events, the error it
    ended with, and the frames the lanes took."""
    monkeypatch.setattr(envelope_mod.time, "time_ns", lambda: NOW_NS)
    config = config_mod.load(env={}, overrides={
        "dsn": "host=unused", "slot_name": "s", "publication_name": "p", "sink": "kafka",
        "bootstrap_servers": "unused:9092", "topic_prefix": "shop", "log_level": "warning",
        "max_batch_ms": 3_600_000, "max_batch_events": 1_000_000, "status_interval_ms": 3_600_000, **overrides})
    stop = threading.Event()
    stream = FakeStream(script, stop)
    sink = FakeSink()
    metrics = Metrics(process_metrics=False)
    stats = Stats()
    parts = build_parts(config, SessionStart("shop", "7000000000000000001"), stream,  # type: ignore[arg-type]
                        FakeCatalog.for_capture("v1"), sink, LsnTracker(START),
                        Surfaces(stats, metrics, Health(require_kafka=False, metrics=metrics)), None)
    counting = None
    if not lanes:
        parts.lanes = parts.relations.lanes = None
    elif parts.lanes is not None:
        counting = CountingCore(parts.lanes.core)
        counting.clock = lambda: NOW_NS
        parts.lanes.core = counting
    try:
        StreamingSession(parts).run(stop)
        ended = None
    except Exception as exc:  # noqa: BLE001 - both paths must end the same way
        ended = f"{type(exc).__name__}: {exc}"
    sent = [r._replace(key_payload=r.key_fields) for batch in sink.committed for r in batch]
    counts = {(s.labels["table"], s.labels["op"]): s.value
              for m in metrics.registry.collect() if m.name == "cdcd_events"
              for s in m.samples if s.name == "cdcd_events_total"}
    return sent, counts, stream.statuses, stats.events, ended, counting.taken if counting is not None else 0


def assert_same(script: list[Step], monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> int:
    """The lanes change nothing; returns how many frames they took."""
    general = session_output(script, False, monkeypatch, **overrides)
    laned = session_output(script, True, monkeypatch, **overrides)
    assert laned[:5] == general[:5]
    assert all(type(r) is Record for r in laned[0] if r.table is not None)
    return laned[5]


def capture_script() -> list[Step]:
    script: list[Step] = []
    for unit in captured("v1"):
        script += [*unit.frames, IDLE, keepalive(unit.end_lsn)]
    return script


@pytest.mark.parametrize("overrides", [
    {},
    {"tombstones_on_delete": False},
    {"skipped_operations": ("c",)},
    {"skipped_operations": ("u", "d")},
    {"decimal_handling_mode": "string", "time_precision_mode": "connect", "binary_handling_mode": "hex"},
    {"decimal_handling_mode": "double", "binary_handling_mode": "base64-url-safe"},
    {"message_key_columns": "public.customers:name"},  # a key outside the value: that table stays general
], ids=repr)
def test_the_capture_gives_the_same_records(overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    taken = assert_same(capture_script(), monkeypatch, **overrides)
    assert taken > 0


def test_no_lanes_where_options_need_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for overrides in ({"provide_transaction_metadata": True}, {"toast_handling_mode": "refetch"},
                      {"transforms": "unwrap", "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState"}):
        config = config_mod.load(env={}, overrides={"dsn": "host=unused", "slot_name": "s", **overrides}) \
            if "transforms" not in overrides else None
        if config is not None:
            assert Lanes.for_session(config, toast=object() if "toast_handling_mode" in overrides else None,
                                     unwrap=None, incremental=None) is None
    config = config_mod.load(env={}, overrides={"dsn": "host=unused", "slot_name": "s"})
    assert Lanes.for_session(config, toast=None, unwrap=object(), incremental=None) is None
    assert Lanes.for_session(config, toast=None, unwrap=None, incremental=None) is not None
    assert assert_same(capture_script(), monkeypatch, provide_transaction_metadata=True) == 0


# -- generated changes ------------------------------------------------------------------------

def _relations() -> dict[int, tuple[bytes, Relation]]:
    decoder = PgOutputDecoder(1)
    out = {}
    for payload in payloads("v1"):
        msg = decoder.decode(payload)
        if isinstance(msg, Relation) and msg.columns:
            out[msg.oid] = (payload, msg)
    return out


RELATIONS = _relations()
TYPES = [p for p in payloads("v1") if p[:1] == b"Y"]

VALUES = st.one_of(
    st.none(), st.just("u"), st.text(max_size=12), st.integers(-2**63, 2**63 - 1).map(str),
    st.sampled_from(["0", "-1", "1.5", "NaN", "t", "f", "2024-02-29", "12:00:00", "2024-01-01 00:00:00+00",
                     "{1,2}", "\\x00ff", "[1,2]", "{}", "00000000-0000-0000-0000-000000000000"]),
)


def tuple_data(values: list[str | None]) -> bytes:
    out = struct.pack(">H", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v == "u":
            out += b"u"
        else:
            data = v.encode()
            out += b"t" + struct.pack(">I", len(data)) + data
    return out


@st.composite
def change(draw: Any) -> bytes:
    oid = draw(st.sampled_from(sorted(RELATIONS)))
    columns = RELATIONS[oid][1].columns
    row = st.lists(VALUES, min_size=len(columns), max_size=len(columns))
    kind = draw(st.sampled_from("IUD"))
    head = kind.encode() + struct.pack(">I", oid)
    if kind == "I":
        return head + b"N" + tuple_data(draw(row))
    old_kind = draw(st.sampled_from(["K", "O"] + ([None] if kind == "U" else [])))
    old_row = draw(row)
    old = b"" if old_kind is None else old_kind.encode() + tuple_data(old_row)
    if kind == "D":
        return head + old
    new = draw(row)
    if draw(st.booleans()):  # mostly an ordinary update: the key stays
        new = [o if c.is_key else n for o, n, c in zip(old_row, new, columns)]
    return head + old + b"N" + tuple_data(new)


def transaction_frames(changes: list[bytes], xid: int, lsn: int) -> tuple[list[Step], int]:
    begin_at, frames = lsn, []
    for c in changes:
        lsn += 100
        frames.append(c)
    commit_lsn, end_lsn = lsn + 100, lsn + 200
    begin = b"B" + struct.pack(">qqI", commit_lsn, 700_000_000_000_000, xid)
    commit = b"C" + struct.pack(">bqqq", 0, commit_lsn, end_lsn, 700_000_000_000_000)
    steps: list[Step] = [XLogData(begin_at, end_lsn, 0, memoryview(begin))]
    steps += [XLogData(begin_at + 100 * (k + 1), end_lsn, 0, memoryview(f)) for k, f in enumerate(frames)]
    steps.append(XLogData(commit_lsn, end_lsn, 0, memoryview(commit)))
    return steps, end_lsn


def generated_script(transactions: list[list[bytes]]) -> list[Step]:
    lsn = START + 1000
    script: list[Step] = [XLogData(lsn, lsn, 0, memoryview(p)) for p in TYPES]
    script += [XLogData(lsn, lsn, 0, memoryview(payload)) for payload, _ in RELATIONS.values()]
    for xid, changes in enumerate(transactions, 1000):
        steps, lsn = transaction_frames(changes, xid, lsn)
        script += [*steps, IDLE, keepalive(lsn)]
    return script


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(transactions=st.lists(st.lists(change(), min_size=1, max_size=8), min_size=1, max_size=4))
def test_generated_changes_give_the_same_records(transactions: list[list[bytes]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(generated_script(transactions), monkeypatch)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(transactions=st.lists(st.lists(change(), min_size=1, max_size=8), min_size=1, max_size=4))
def test_message_key_columns_give_the_same_records(transactions: list[list[bytes]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys of other columns than the primary key, some optional: an old tuple that leaves a key
    column out (or nulls it) is a key change on both paths."""
    assert_same(generated_script(transactions), monkeypatch,
                message_key_columns="public.customers:id,name;public.child:parent_id;public.parent:label,id")


# -- when a transaction may use them ------------------------------------------------------------

class _Incremental:
    def __init__(self, oid: int | None, open_: bool) -> None:
        self.table_oid, self.window_open = oid, open_


def test_lanes_open_only_for_transactions_kafka_holds_none_of() -> None:
    core = native.change_lanes(Record)
    lanes = Lanes(core, None)
    txn = OpenTransaction(7, 1_700_000_000_000_000, 100, 200)
    lanes.sync(txn, 50)
    assert core.open
    for change_ in ({"skip": True}, {"held": 3}, {"origin": "other"}):
        lanes.sync(None, 50)
        other = OpenTransaction(8, 1, 100, 200, **change_)  # type: ignore[arg-type]
        lanes.sync(other, 50)
        assert not core.open, change_
    lanes.sync(None, 50)
    assert not core.open
    assert not core.begin(10**17, 1, None)  # a commit time the value frame does not write: general path


def test_an_open_incremental_window_blocks_its_table() -> None:
    core = native.change_lanes(Record)
    incremental = _Incremental(16390, True)
    lanes = Lanes(core, incremental)  # type: ignore[arg-type]
    lanes.sync(None, None)
    assert core.blocked == 16390
    incremental.window_open = False
    lanes.sync(None, None)
    assert core.blocked == -1


# -- damaged frames ---------------------------------------------------------------------------

@st.composite
def damaged(draw: Any) -> bytes:
    frame = bytearray(draw(change()))
    how = draw(st.sampled_from(["truncate", "flip", "extend"]))
    if how == "truncate":
        del frame[draw(st.integers(1, len(frame) - 1)):]
    elif how == "flip":
        at = draw(st.integers(0, len(frame) - 1))
        frame[at] ^= 1 << draw(st.integers(0, 7))
    else:
        frame += draw(st.binary(min_size=1, max_size=4))
    return bytes(frame)


def _open_lanes() -> tuple[Any, PgOutputDecoder]:
    decoder = PgOutputDecoder(1)
    for payload in TYPES:
        decoder.decode(payload)
    catalog = FakeCatalog.for_capture("v1")
    core = native.change_lanes(Record)
    options = envelope_mod.EnvelopeOptions("shop", "shop", "3.6.3.Final")
    for payload, relation in RELATIONS.values():
        decoder.decode(payload)
        lane = envelope_mod.TableEncoder(catalog.table_info(relation), options).compiled_lane(len(relation.columns))
        assert lane is not None
        core.add(relation.oid, lane)
    assert core.begin(1_700_000_000_000_000, 7, None)
    return core, decoder


@settings(max_examples=300, deadline=None)
@given(frame=damaged())
def test_a_damaged_frame_goes_the_general_way(frame: bytes) -> None:
    """What the general decoder rejects, a lane never takes (it names the defect); nothing crashes."""
    core, decoder = _open_lanes()
    data = b"w" + struct.pack(">QQq", 1000, 2000, 0) + frame
    try:
        records = core.change(data)
    except Exception as exc:  # noqa: BLE001 - only the general path's own errors may surface
        # A value the converters refuse ends both paths the same way (the generated-changes test).
        assert not isinstance(exc, (IndexError, SystemError, MemoryError)), exc
        return
    try:
        decoder.decode(frame)
    except DecodeError:
        assert records is None
