"""The ``source`` block: formatted directly, it is the JSON that dumping Debezium's field order would give."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cdcd.debezium.connect_json import framed, head
from cdcd.debezium.source_info import SOURCE_SCHEMA, SourceBlock, SourceInfo

SOURCES = [
    SourceInfo(1795547161012799, 1771, 162789640, 162789000),
    SourceInfo(1795547161012799, None, 42, None),
    SourceInfo(5, 7, 9, 3, snapshot="last_in_data_collection"),
    SourceInfo(5, None, 9, 3, snapshot="incremental", lsn_null=True),
    SourceInfo(5, 7, 9, 3, origin='o"rigin\u00e9', origin_lsn=None),
    SourceInfo(5, 7, 9, 3, origin=None, origin_lsn=77),
    SourceInfo(5, 7, 9, 3, snapshot="s\u00e9\"x"),
]


def _as_dict(s: SourceInfo, schema: str, table: str) -> dict[str, Any]:
    return {
        "version": "3.6.3.Final", "connector": "postgresql", "name": 'pre"fix', "ts_ms": s.ts_us // 1000,
        "snapshot": s.snapshot, "db": "d\u00e9b",
        "sequence": orjson.dumps([None if s.last_commit_lsn is None else str(s.last_commit_lsn), str(s.lsn)]).decode(),
        "ts_us": s.ts_us, "ts_ns": s.ts_us * 1000, "schema": schema, "table": table, "txId": s.txid,
        "lsn": None if s.lsn_null else s.lsn, "xmin": None, "origin": s.origin, "origin_lsn": s.origin_lsn,
    }


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("schema", "table"), [("public", "orders"), ("", ""), ("Mixed Schema", 'we"ird,t2')])
def test_block_is_the_dict_dumped(source: SourceInfo, schema: str, table: str) -> None:
    block = SourceBlock("3.6.3.Final", 'pre"fix', "d\u00e9b")
    text = block.json(source, SourceBlock.table(schema, table))
    assert text.encode() == orjson.dumps(_as_dict(source, schema, table))


def test_field_order_is_the_schemas() -> None:
    doc = orjson.loads(SourceBlock("v", "n", "d").json(SOURCES[0], SourceBlock.table("s", "t")))
    assert list(doc) == [f["field"] for f in SOURCE_SCHEMA["fields"]]


def test_read_now_has_no_transaction() -> None:
    s = SourceInfo.read_now(10, 5, snapshot="incremental")
    assert (s.txid, s.lsn, s.last_commit_lsn, s.snapshot) == (None, 10, 5, "incremental") and s.ts_us > 0


def test_framing_is_the_document_dumped() -> None:
    schema = {"type": "struct", "fields": [], "optional": False}
    for payload in (None, {"a": 1}, "x", [1, 2]):
        assert framed(head(schema), payload) == orjson.dumps({"schema": schema, "payload": payload})
    assert head(orjson.dumps(schema)) == head(schema)
