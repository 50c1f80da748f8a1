"""Signal rows (Debezium's signal table) and the incremental snapshot's persisted state."""

from __future__ import annotations

import pytest

from cdcd.delivery.offsets import SourceOffset
from cdcd.snapshot.incremental_state import IncrementalState
from cdcd.source.signal_table import (
    Signal,
    SignalError,
    parse_snapshot_request,
    parse_stop_request,
    signal_from_row,
    signal_table_name,
)


def test_signal_columns_are_read_by_position() -> None:
    assert signal_from_row(("a1", "execute-snapshot", '{"data-collections": ["s.t"]}', "extra")) == Signal(
        "a1", "execute-snapshot", '{"data-collections": ["s.t"]}')
    assert signal_from_row(("a2", "log", None)) == Signal("a2", "log", None)
    assert signal_from_row(("a3", None, None)) is None
    assert signal_from_row(("only-one",)) is None


def test_execute_snapshot_request() -> None:
    request = parse_snapshot_request(Signal("s", "execute-snapshot", """{
        "data-collections": ["public.orders", "inv\\\\.line_.*"], "type": "INCREMENTAL",
        "additional-conditions": [{"data-collection": "public.orders", "filter": "color = 'blue'"},
                                  {"data-collection": "inv\\\\.line_.*", "filter": "qty > 1"}]}"""))
    assert request.data_collections == ("public.orders", r"inv\.line_.*")
    assert request.kind == "incremental"
    assert request.condition_for("public.orders") == "color = 'blue'"
    assert request.condition_for("inv.line_7") == "qty > 1"
    assert request.condition_for("public.other") is None
    legacy = parse_snapshot_request(Signal("s", "execute-snapshot",
                                           '{"data-collections": ["a.b"], "additional-condition": "id > 5"}'))
    assert legacy.condition_for("a.b") == "id > 5" and legacy.kind == "incremental"


@pytest.mark.parametrize(("data", "message"), [
    (None, "data-collections"),
    ('{"data-collections": []}', "data-collections"),
    ('{"data-collections": "a.b"}', "data-collections"),
    ('{"data-collections": ["a.b"], "type": "eager"}', "incremental or blocking"),
    ('{"data-collections": ["a.b"], "additional-conditions": [{"filter": "x"}]}', "data-collection"),
    ("not json", "not JSON"),
    ("[1]", "JSON object"),
])
def test_bad_execute_snapshot_is_a_signal_error(data: str | None, message: str) -> None:
    with pytest.raises(SignalError, match=message):
        parse_snapshot_request(Signal("bad", "execute-snapshot", data))


def test_stop_request() -> None:
    assert parse_stop_request(Signal("s", "stop-snapshot", None)) == ()
    assert parse_stop_request(Signal("s", "stop-snapshot", "{}")) == ()
    assert parse_stop_request(Signal("s", "stop-snapshot", '{"data-collections": ["a.b"], "type": "incremental"}')) \
        == ("a.b",)
    with pytest.raises(SignalError):
        parse_stop_request(Signal("s", "stop-snapshot", '{"data-collections": "a.b"}'))


def test_state_round_trips_through_the_offsets_record() -> None:
    state = IncrementalState(tables=["public.a", "public.b"], conditions={"public.a": "v > 1"},
                             last_key=["10", "x y"], max_key=["99", "z"], paused=True, correlation_id="sig-1")
    offset = SourceOffset(123, 7, 1, "sys", incremental=state.to_doc())
    back = SourceOffset.from_json(offset.to_json())
    assert back == offset
    assert IncrementalState.from_doc(back.incremental) == state
    state.next_table()
    assert (state.tables, state.conditions, state.last_key, state.max_key) == (["public.b"], {}, None, None)
    state.next_table()
    assert state.to_doc() is None and not state.running and not state.paused
    assert b"incremental_snapshot" not in SourceOffset(1, None).to_json()
    assert IncrementalState.from_doc(None) == IncrementalState()


def test_signal_table_name_defaults_to_public() -> None:
    assert signal_table_name("dbz_signal") == "public.dbz_signal"
    assert signal_table_name("ops.dbz_signal") == "ops.dbz_signal"


def test_chunk_size_must_be_positive() -> None:
    from cdcd.errors import ConfigError
    from cdcd.ops.metrics import Metrics
    from cdcd.snapshot.incremental import IncrementalSnapshot

    with pytest.raises(ConfigError, match="chunk.size=0"):
        IncrementalSnapshot("dbname=x", "public.sig", publication="p", accept=lambda _: True,
                            options=None, metrics=Metrics(process_metrics=False), chunk_size=0)  # type: ignore[arg-type]
