"""Envelope tests: rebuild the real Debezium 3.6.3 sample from hand-made inputs.

Every record of ``shared/debezium-reference/sample.jsonl`` (beside the repository root,
see ``tests/shared_material.py``) is produced
from a ``TableInfo``, pgoutput-style ``TupleData`` (text values) and the
``SourceInfo`` the pipeline would pass, then compared with the sample: topic,
key (schema and payload), value schema exactly, value payload exactly except
the per-run processing time (top-level ``ts_ms``/``ts_us``/``ts_ns``) and
``source.version``.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from typing import Any

import pytest

from cdcd.debezium.envelope import (
    EnvelopeOptions,
    Record,
    SourceInfo,
    TableEncoder,
    TransactionContext,
    sanitize_topic,
    transaction_begin_record,
    transaction_end_record,
)
from cdcd.decode.messages import UNCHANGED_TOAST
from cdcd.source.tables import ColumnInfo, TableInfo
from tests.shared_material import shared_file

SAMPLE = "debezium-reference/sample.jsonl"
SAMPLE_RECORDS = 15  # lines of the sample; checked by test_sample_has_every_rebuilt_record
NUMERIC_10_2 = ((10 << 16) | 2) + 4
COLUMNS = (
    ColumnInfo("order_id", 23, "int4", -1, False),
    ColumnInfo("line_no", 23, "int4", -1, False),
    ColumnInfo("sku", 25, "text", -1, False),
    ColumnInfo("qty", 23, "int4", -1, False),
    ColumnInfo("price", 1700, "numeric", NUMERIC_10_2, True),
)
ORDER_LINES = TableInfo(16384, "public", "order_lines", COLUMNS, ("order_id", "line_no"))
ORDER_LINES_V2 = TableInfo(
    16384, "public", "order_lines", COLUMNS + (ColumnInfo("note", 25, "text", -1, True, "'n/a'::text"),),
    ("order_id", "line_no"),
)
OPTIONS = EnvelopeOptions(topic_prefix="golden", database="golden", connector_version="0.1.0")


def _src(ts_us: int, txid: int, lsn: int, last: int | None, snapshot: str = "false") -> SourceInfo:
    return SourceInfo(ts_us=ts_us, txid=txid, lsn=lsn, last_commit_lsn=last, snapshot=snapshot)


def _rebuild_sample() -> list[Record]:
    v1, v2 = TableEncoder(ORDER_LINES, OPTIONS), TableEncoder(ORDER_LINES_V2, OPTIONS)
    first_tx = TransactionContext(1771, 162789640, 1795547161012)
    records: list[Record] = []
    # snapshot
    records += v1.create(("100", "1", "SKU-A", "2", "9.99"),
                         _src(1795547158383032, 1764, 162787024, None, "first_in_data_collection"), None, op="r")
    records += v1.create(("100", "2", "SKU-B", "1", "19.50"),
                         _src(1795547158383032, 1764, 162787024, None, "last_in_data_collection"), None, op="r")
    # streaming
    records += v1.create(("200", "1", "SKU-C", "5", "1.00"), _src(1795547161012799, 1771, 162789640, 162789640), first_tx)
    records += v1.update(None, None, ("200", "1", "SKU-C", "6", "1.00"),
                         _src(1795547161013182, 1772, 162789832, 162789832), TransactionContext(1772, 162789832, 0))
    records += v1.update("K", ("200", "1", None, None, None), ("200", "2", "SKU-C", "6", "1.00"),
                         _src(1795547161013457, 1773, 162789976, 162789976), TransactionContext(1773, 162789976, 0))
    records += v1.delete("K", ("100", "2", None, None, None),
                         _src(1795547161013694, 1774, 162790200, 162790200), TransactionContext(1774, 162790200, 0))
    # after ALTER TABLE ... ADD COLUMN note text DEFAULT 'n/a'
    records += v2.create(("300", "1", "SKU-D", "1", "0.99", "after-ddl"),
                         _src(1795547161014750, 1776, 162793096, 162790320), TransactionContext(1776, 162793096, 0))
    records += v2.update(None, None, ("100", "1", "SKU-A", "2", "9.99", "touched"),
                         _src(1795547161015079, 1777, 162793304, 162793304), TransactionContext(1777, 162793304, 0))
    records += v2.create(("400", "1", "SKU-E", "3", "4.50", "n/a"),
                         _src(1795547161025655, 1793, 162830040, 162830040), TransactionContext(1793, 162830040, 0))
    records += v2.truncate(_src(1795547161029503, 1795, 162841432, 162830600), TransactionContext(1795, 162841432, 0))
    records.append(transaction_begin_record("golden", first_tx))
    records.append(transaction_end_record("golden", first_tx, 162789832))
    return records


def _strip_run_values(value: dict[str, Any]) -> dict[str, Any]:
    payload = dict(value["payload"])
    if "source" in payload:  # a change event, not a transaction event
        for name in ("ts_ms", "ts_us", "ts_ns"):
            payload.pop(name)
        payload["source"] = {k: v for k, v in payload["source"].items() if k != "version"}
    return {"schema": value["schema"], "payload": payload}


@pytest.fixture(scope="module")
def sample_lines() -> list[dict[str, Any]]:
    """The real Debezium records; fails (no skip) when shared/ is missing."""
    return [json.loads(line) for line in shared_file(SAMPLE).read_text().splitlines()]


def test_sample_has_every_rebuilt_record(sample_lines: list[dict[str, Any]]) -> None:
    assert len(sample_lines) == len(_rebuild_sample()) == SAMPLE_RECORDS


@pytest.mark.parametrize("index", range(SAMPLE_RECORDS))
def test_sample_record(index: int, sample_lines: list[dict[str, Any]]) -> None:
    ours, theirs = _rebuild_sample()[index], sample_lines[index]
    assert ours.topic == theirs["destination"]
    assert (None if ours.key is None else json.loads(ours.key)) == theirs["key"]
    if theirs["value"] is None:
        assert ours.value is None
        return
    assert ours.value is not None
    assert _strip_run_values(json.loads(ours.value)) == _strip_run_values(theirs["value"])


def test_records_carry_what_they_are_about() -> None:
    """Table, key columns, LSN and txId travel with each record: logs and dead letters parse nothing."""
    records = _rebuild_sample()
    about = [(r.table, r.key_fields, r.lsn, r.txid) for r in records]
    assert about[2] == ("public.order_lines", {"order_id": 200, "line_no": 1}, 162789640, 1771)  # insert
    # a key change: delete + tombstone under the old key, create under the new one
    assert about[4:7] == [("public.order_lines", {"order_id": 200, "line_no": 1}, 162789976, 1773)] * 2 + [
        ("public.order_lines", {"order_id": 200, "line_no": 2}, 162789976, 1773)]
    assert about[7:9] == [("public.order_lines", {"order_id": 100, "line_no": 2}, 162790200, 1774)] * 2
    assert about[12] == ("public.order_lines", None, 162841432, 1795)  # truncate: no key
    assert about[13] == (None, None, None, None)  # transaction metadata is about no row


def test_sample_schema_bytes_identical(sample_lines: list[dict[str, Any]]) -> None:
    """Key order matters to byte-comparing consumers: our schema JSON equals Debezium's text."""
    ours = json.loads(_rebuild_sample()[2].value or b"")
    assert json.dumps(ours["schema"]) == json.dumps(sample_lines[2]["value"]["schema"])
    assert list(ours["payload"]) == list(sample_lines[2]["value"]["payload"])
    assert list(ours["payload"]["source"]) == list(sample_lines[2]["value"]["payload"]["source"])


def test_processing_and_source_times() -> None:
    before = time.time_ns()
    rec = TableEncoder(ORDER_LINES, OPTIONS).create(
        ("1", "1", "a", "1", None), _src(1_700_000_000_123_456, 5, 10, None), None)[0]
    payload = json.loads(rec.value or b"")["payload"]
    assert before <= payload["ts_ns"] <= time.time_ns()
    assert payload["ts_us"] == payload["ts_ns"] // 1000 and payload["ts_ms"] == payload["ts_ns"] // 1_000_000
    src = payload["source"]
    assert (src["ts_ms"], src["ts_us"], src["ts_ns"]) == (1_700_000_000_123, 1_700_000_000_123_456, 1_700_000_000_123_456_000)
    assert src["sequence"] == '[null,"10"]' and src["version"] == "0.1.0"
    assert payload["after"]["price"] is None


def _value(rec: Record) -> dict[str, Any]:
    assert rec.value is not None
    return json.loads(rec.value)  # type: ignore[no-any-return]


def test_key_change_headers_and_tombstone_carry_keys() -> None:
    recs = TableEncoder(ORDER_LINES, OPTIONS).update(
        "K", ("1", "1", None, None, None), ("1", "2", "x", "3", "4.00"), _src(1, 1, 1, 1), None)
    assert [r.value is None for r in recs] == [False, True, False]
    assert recs[0].headers == (("__debezium.newkey", b'{"order_id":1,"line_no":2}'),)
    assert recs[1].headers == recs[0].headers and recs[1].key == recs[0].key
    assert recs[2].headers == (("__debezium.oldkey", b'{"order_id":1,"line_no":1}'),)
    assert [_value(r)["payload"]["op"] for r in (recs[0], recs[2])] == ["d", "c"]


def test_update_with_same_key_and_full_old_image() -> None:
    table = TableInfo(1, "s", "t", (ColumnInfo("id", 23, "int4", -1, False), ColumnInfo("body", 25, "text", -1, True)),
                      ("id",), replica_identity="f")
    enc = TableEncoder(table, OPTIONS)
    [rec] = enc.update("O", ("7", "long text"), ("7", UNCHANGED_TOAST), _src(1, 1, 1, 1), None)
    payload = _value(rec)["payload"]
    assert payload["before"] == {"id": 7, "body": "long text"}
    assert payload["after"] == {"id": 7, "body": "long text"}  # filled from the old image, as Debezium does
    [rec] = enc.update(None, None, ("7", UNCHANGED_TOAST), _src(1, 1, 1, 1), None)
    assert _value(rec)["payload"]["after"]["body"] == "__debezium_unavailable_value"


def test_placeholder_is_configurable() -> None:
    opts = EnvelopeOptions("p", "db", "v", unavailable_value_placeholder="<toast>")
    table = TableInfo(1, "s", "t", (ColumnInfo("id", 23, "int4", -1, False), ColumnInfo("b", 17, "bytea", -1, True)), ("id",))
    [rec] = TableEncoder(table, opts).update(None, None, ("1", UNCHANGED_TOAST), _src(1, 1, 1, 1), None)
    assert _value(rec)["payload"]["after"]["b"] == "PHRvYXN0Pg=="  # base64(b"<toast>")


def test_table_without_primary_key_and_tombstones_off() -> None:
    table = TableInfo(1, "public", "logs", (ColumnInfo("msg", 25, "text", -1, True),), ())
    enc = TableEncoder(table, EnvelopeOptions("p", "db", "v", tombstones_on_delete=False))
    [rec] = enc.create(("hi",), _src(1, 1, 1, 1), None)
    assert rec.key is None and rec.topic == "p.public.logs"
    assert len(enc.delete("O", ("hi",), _src(1, 1, 1, 1), None)) == 1


def test_truncate_has_no_key_but_counts_in_transaction() -> None:
    txn = TransactionContext(9, 100, 5)
    [rec] = TableEncoder(ORDER_LINES, OPTIONS).truncate(_src(1, 9, 100, 99), txn)
    payload = _value(rec)["payload"]
    assert rec.key is None and payload["op"] == "t" and payload["before"] is None and payload["after"] is None
    assert payload["transaction"] == {"id": "9:100", "total_order": 1, "data_collection_order": 1}


def test_excluded_columns_leave_value_but_not_key() -> None:
    opts = EnvelopeOptions("p", "db", "v", column_exclude_list=(r"public\.ORDER_LINES\.(sku|order_id)",))
    enc = TableEncoder(ORDER_LINES, opts)
    rec = enc.create(("1", "2", "x", "3", "4.00"), _src(1, 1, 1, 1), None)[0]
    value = _value(rec)
    assert value["payload"]["after"] == {"line_no": 2, "qty": 3, "price": "AZA="}
    assert [f["field"] for f in value["schema"]["fields"][1]["fields"]] == ["line_no", "qty", "price"]
    assert json.loads(rec.key or b"")["payload"] == {"order_id": 1, "line_no": 2}


def test_transaction_order_counts_data_events_only() -> None:
    other = TableInfo(2, "public", "ri_full", (ColumnInfo("id", 23, "int4", -1, False),), ("id",))
    txn = TransactionContext(42, 1000, 77)
    a, b = TableEncoder(ORDER_LINES, OPTIONS), TableEncoder(other, OPTIONS)
    blocks = [_value(r)["payload"]["transaction"] for r in (
        *a.delete("K", ("1", "1", None, None, None), _src(1, 42, 1000, 1), txn),
        *b.create(("5",), _src(1, 42, 1001, 1), txn),
        *a.create(("1", "1", "x", "1", None), _src(1, 42, 1002, 1), txn),
    ) if r.value is not None]
    assert [(x["total_order"], x["data_collection_order"]) for x in blocks] == [(1, 1), (2, 1), (3, 2)]
    end = json.loads(transaction_end_record("golden", txn, 2000).value or b"")["payload"]
    assert end["id"] == "42:2000" and end["event_count"] == 3
    # java.util.HashMap order, not insertion order
    assert end["data_collections"] == [
        {"data_collection": "public.ri_full", "event_count": 1},
        {"data_collection": "public.order_lines", "event_count": 2},
    ]


def test_bad_value_becomes_null_and_is_counted() -> None:
    enc = TableEncoder(ORDER_LINES, OPTIONS)
    [rec] = enc.create(("1", "1", "x", "1", "NaN"), _src(1, 1, 1, 1), None)
    assert _value(rec)["payload"]["after"]["price"] is None
    assert enc.conversion_errors == 1


def test_unknown_types_and_topic_sanitizing() -> None:
    """Debezium 3.6.3 leaves out a column it has no converter for (a ``box``), or with
    include.unknown.datatypes=true carries the text pgjdbc prints as bytes."""
    table = TableInfo(1, "public", "my table", (
        ColumnInfo("id", 23, "int4", -1, False), ColumnInfo("area", 603, "box", -1, True),
        ColumnInfo("n", 23, "int4", -1, True),
    ), ("id",))
    enc = TableEncoder(table, OPTIONS)
    assert enc.fallback_columns == ("area",)
    assert enc.topic == "golden.public.my_table" == sanitize_topic("golden.public.my table")
    value = _value(enc.create(("1", "(1,1),(0,0)", "2"), _src(1, 1, 1, 1), None)[0])
    assert value["payload"]["after"] == {"id": 1, "n": 2}
    assert [f["field"] for f in value["schema"]["fields"][1]["fields"]] == ["id", "n"]
    assert value["schema"]["name"] == "golden.public.my_table.Envelope"
    enc = TableEncoder(table, replace(OPTIONS, include_unknown_datatypes=True))
    value = _value(enc.create(("1", "(1,1),(0,0)", "2"), _src(1, 1, 1, 1), None)[0])
    assert value["payload"]["after"]["area"] == base64.b64encode(b"(1.0,1.0),(0.0,0.0)").decode()
    assert value["schema"]["fields"][1]["fields"][1] == {"type": "bytes", "optional": True, "field": "area"}


def test_enum_labels_and_default_replaces_null() -> None:
    table = TableInfo(1, "s", "t", (
        ColumnInfo("id", 23, "int4", -1, False, "nextval('t_id_seq'::regclass)"),
        ColumnInfo("mood", 5000, "mood", -1, True, type_kind="e"),
        ColumnInfo("note", 25, "text", -1, True, "'n/a'::text"),
    ), ("id",))
    enc = TableEncoder(table, OPTIONS, enum_values={"mood": ("sad", "ok")})
    value = _value(enc.create(("1", "ok", None), _src(1, 1, 1, 1), None)[0])
    fields = value["schema"]["fields"][1]["fields"]
    assert fields[0] == {"type": "int32", "optional": False, "default": 0, "field": "id"}
    assert fields[1]["parameters"] == {"allowed": "sad,ok"}
    assert value["payload"]["after"] == {"id": 1, "mood": "ok", "note": "n/a"}  # replace.null.with.default
    opts = EnvelopeOptions("golden", "golden", "v", replace_null_with_default=False)
    value = _value(TableEncoder(table, opts).create(("1", "ok", None), _src(1, 1, 1, 1), None)[0])
    assert value["payload"]["after"]["note"] is None
