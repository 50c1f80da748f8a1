"""Schema change events from ``cdcd.ddl`` messages, without PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cdcd.debezium.envelope import SourceInfo
from cdcd.debezium.schema_change import SchemaChangeEncoder, jdbc_type, parse


def column(name: str, typname: str, type_oid: int, *, typmod: int = -1, type_: str | None = None,
           not_null: bool = False, default: str | None = None, typtype: str = "b", base: str | None = None,
           identity: str = "", generated: str = "", comment: str | None = None,
           enum: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "typname": typname, "type_oid": str(type_oid), "typmod": typmod, "type": type_ or typname,
            "not_null": not_null, "default": default, "typtype": typtype, "base": base, "identity": identity,
            "generated": generated, "comment": comment, "enum": enum}


MESSAGE = orjson.dumps({
    "tag": "ALTER TABLE", "ddl": "ALTER TABLE orders ADD COLUMN note varchar(20)",
    "tables": [{
        "type": "ALTER", "oid": "16391", "schema": "public", "name": "orders", "comment": "all orders",
        "primary_key": ["id"],
        "columns": [
            column("id", "int4", 23, type_="integer", not_null=True, default="nextval('orders_id_seq'::regclass)"),
            column("amount", "numeric", 1700, typmod=655366, type_="numeric(10,2)"),
            column("tags", "_text", 1009, type_="text[]", base="text"),
            column("status", "mood", 90000, typtype="e", enum=["new", "done"], comment="where it is"),
            column("note", "varchar", 1043, typmod=24, type_="character varying(20)"),
            column("total", "int8", 20, generated="s"),
            column("ident", "int8", 20, identity="a", not_null=True),
        ],
    }],
})
SOURCE = SourceInfo(ts_us=1_700_000_000_123_456, txid=812, lsn=26997904, last_commit_lsn=26990000)


def encoder(accept: Any = lambda name: True) -> SchemaChangeEncoder:
    return SchemaChangeEncoder("shop", "shopdb", "0.1.0", accept)


def test_schema_change_event_shape() -> None:
    record = encoder().record(parse(MESSAGE), SOURCE)
    assert record is not None and record.topic == "shop"
    key = orjson.loads(record.key or b"")
    assert key["schema"]["name"] == "io.debezium.connector.postgresql.SchemaChangeKey"
    assert key["payload"] == {"databaseName": "shopdb"}
    value = orjson.loads(record.value or b"")
    schema, payload = value["schema"], value["payload"]
    assert schema["name"] == "io.debezium.connector.postgresql.SchemaChangeValue"
    assert [f["field"] for f in schema["fields"]] == list(payload) == [
        "source", "ts_ms", "databaseName", "schemaName", "ddl", "tableChanges"]
    change_schema = schema["fields"][5]["items"]
    assert change_schema["name"] == "io.debezium.connector.schema.Change"
    table_schema = change_schema["fields"][2]
    assert table_schema["name"] == "io.debezium.connector.schema.Table" and table_schema["optional"] is True
    column_schema = table_schema["fields"][2]["items"]
    assert column_schema["name"] == "io.debezium.connector.schema.Column"
    assert payload["ts_ms"] == 1_700_000_000_123 and payload["ddl"] == "ALTER TABLE orders ADD COLUMN note varchar(20)"
    assert payload["databaseName"] == "shopdb" and payload["schemaName"] == "public"
    source = payload["source"]
    assert (source["schema"], source["table"], source["txId"], source["lsn"]) == ("public", "orders", 812, 26997904)
    assert source["sequence"] == '["26990000","26997904"]'
    (change,) = payload["tableChanges"]
    assert change["type"] == "ALTER" and change["id"] == '"shopdb"."public"."orders"'
    table = change["table"]
    assert table["primaryKeyColumnNames"] == ["id"] and table["comment"] == "all orders"
    assert table["defaultCharsetName"] is None
    columns = table["columns"]
    for c in columns:  # every payload column has the schema's fields, in order
        assert list(c) == [f["field"] for f in column_schema["fields"]]
    by_name = {c["name"]: c for c in columns}
    assert [c["position"] for c in columns] == list(range(1, 8))
    assert by_name["id"] == {
        "name": "id", "jdbcType": 4, "nativeType": 23, "typeName": "int4", "typeExpression": "integer",
        "charsetName": None, "length": 10, "scale": 0, "position": 1, "optional": False, "autoIncremented": True,
        "generated": False, "comment": None, "defaultValueExpression": "nextval('orders_id_seq'::regclass)",
        "enumValues": None}
    assert (by_name["amount"]["jdbcType"], by_name["amount"]["length"], by_name["amount"]["scale"]) == (2, 10, 2)
    assert by_name["tags"]["jdbcType"] == 2003
    assert by_name["status"]["enumValues"] == ["new", "done"] and by_name["status"]["jdbcType"] == 12
    assert by_name["status"]["comment"] == "where it is" and by_name["status"]["optional"] is True
    assert (by_name["note"]["length"], by_name["note"]["typeExpression"]) == (20, "character varying(20)")
    assert by_name["total"]["generated"] is True and by_name["ident"]["autoIncremented"] is True


def test_drop_has_no_table_and_filters_apply() -> None:
    message = parse(orjson.dumps({"tag": "DROP TABLE", "ddl": "DROP TABLE a, b", "tables": [
        {"type": "DROP", "oid": 1, "schema": "public", "name": "a"},
        {"type": "DROP", "oid": 2, "schema": "public", "name": "b"}]}))
    record = encoder().record(message, SOURCE)
    assert record is not None
    payload = orjson.loads(record.value or b"")["payload"]
    assert [(c["type"], c["id"], c["table"]) for c in payload["tableChanges"]] == [
        ("DROP", '"shopdb"."public"."a"', None), ("DROP", '"shopdb"."public"."b"', None)]
    assert payload["source"]["table"] == "a,b"
    only_b = encoder(lambda name: name == "public.b").record(message, SOURCE)
    assert only_b is not None
    assert [c["id"] for c in orjson.loads(only_b.value or b"")["payload"]["tableChanges"]] == ['"shopdb"."public"."b"']
    assert encoder(lambda name: False).record(message, SOURCE) is None


@pytest.mark.parametrize("content", [b"not json", b"{}", b'{"tag": "X", "tables": [{"type": "ALTER"}]}'])
def test_malformed_messages_are_rejected(content: bytes) -> None:
    with pytest.raises(ValueError, match="not a cdcd.ddl message"):
        parse(content)


@pytest.mark.parametrize(("typname", "typtype", "base", "expected"), [
    ("int2", "b", None, 5), ("int8", "b", None, -5), ("bool", "b", None, -7), ("text", "b", None, 12),
    ("bpchar", "b", None, 1), ("timestamptz", "b", None, 93), ("bytea", "b", None, -2), ("jsonb", "b", None, 1111),
    ("uuid", "b", None, 1111), ("_int4", "b", "int4", 2003), ("mood", "e", None, 12), ("pos", "d", "int4", 4),
    ("pair", "c", None, 2002), ("xml", "b", None, 2009),
])
def test_jdbc_types(typname: str, typtype: str, base: str | None, expected: int) -> None:
    assert jdbc_type(typname, typtype, base) == expected
