"""Event options that reshape columns and keys, checked against Debezium's documented behaviour.

Expected values come from the Debezium PostgreSQL connector documentation and
from Debezium's own tests (``RecordsStreamProducerIT``,
``AbstractRecordsProducerTest``): masks are N ``*``, truncation keeps N
characters, ``column.propagate.source.type`` adds ``__debezium.source.column.*``
parameters, ``message.key.columns`` uses ``<table regex>:<col>,<col>;...``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from cdcd.debezium.column_rules import (
    HashMask,
    adjust_name,
    column_rule_options,
    parse_message_key_columns,
    split_regex_list,
)
from cdcd.debezium.envelope import EnvelopeOptions, Record, SourceInfo, TableEncoder, TransactionContext
from cdcd.debezium.java import java_serialized_string
from cdcd.debezium.types.source import length_and_scale
from cdcd.errors import ConfigError
from cdcd.source.tables import ColumnInfo, TableInfo

VARCHAR = 1043


def _varchar(name: str, n: int, optional: bool = True) -> ColumnInfo:
    return ColumnInfo(name, VARCHAR, "varchar", n + 4, optional)


CUSTOMERS = TableInfo(1, "inventory", "customers", (
    ColumnInfo("id", 23, "int4", -1, False),
    _varchar("first_name", 255, False),
    _varchar("email", 255),
    ColumnInfo("bio", 25, "text", -1, True),
    ColumnInfo("score", 1700, "numeric", ((3 << 16) | 2) + 4, True),
    _varchar("code", 3),
), ("id",))
ROW = ("1001", "Sally", "sally@example.com", "Likes long walks", "9.50", "ABC")
SRC = SourceInfo(ts_us=1_700_000_000_000_000, txid=7, lsn=100, last_commit_lsn=90)


def _opts(**kw: Any) -> EnvelopeOptions:
    return EnvelopeOptions("dbserver1", "inventory", "0.1.0", **kw)


def _value(rec: Record) -> dict[str, Any]:
    assert rec.value is not None
    return json.loads(rec.value)  # type: ignore[no-any-return]


def _after(rec: Record) -> dict[str, Any]:
    return _value(rec)["payload"]["after"]  # type: ignore[no-any-return]


def _fields(rec: Record) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in _value(rec)["schema"]["fields"][1]["fields"]}


def _insert(opts: EnvelopeOptions, table: TableInfo = CUSTOMERS, row: tuple[Any, ...] = ROW) -> Record:
    [rec] = TableEncoder(table, opts).create(row, SRC, None)
    return rec


# --- regex lists --------------------------------------------------------------------------

def test_regex_lists_split_like_debezium() -> None:
    assert split_regex_list(r"inventory\.customers\.email, inventory\.orders\..*") == (
        r"inventory\.customers\.email", r"inventory\.orders\..*")
    assert split_regex_list(r"a{1\,3},b") == ("a{1,3}", "b")  # escaped comma stays in the regex
    assert split_regex_list("a{1,3}") == ("a{1", "3}")  # Debezium splits inside {m,n} too
    assert split_regex_list(" , x ,") == ("x",)


def test_dynamic_properties_become_options() -> None:
    opts = column_rule_options({
        "column.mask.with.8.chars": "inventory.customers.email",
        "column.truncate.to.20.chars": r"inventory\.customers\.bio,inventory\.orders\.note",
        "column.mask.hash.SHA-256.with.salt.CzQMA0cB5K": "inventory.orders.customerName, inventory.shipment.customerName",
        "column.mask.hash.v2.SHA-256.with.salt.salty": "a.b.c",
        "topic.prefix": "ignored",
    })
    assert opts["column_mask_with"] == {8: ("inventory.customers.email",)}
    assert opts["column_truncate_to"] == {20: (r"inventory\.customers\.bio", r"inventory\.orders\.note")}
    assert opts["column_mask_hash"] == (
        HashMask("SHA-256", "CzQMA0cB5K", ("inventory.orders.customerName", "inventory.shipment.customerName")),
        HashMask("SHA-256", "salty", ("a.b.c",), 2),
    )


# --- column.include.list / exclude --------------------------------------------------------

def test_include_list_keeps_only_listed_columns_but_the_key() -> None:
    rec = _insert(_opts(column_include_list=(r"inventory\.customers\.(email|bio)",)))
    assert _after(rec) == {"email": "sally@example.com", "bio": "Likes long walks"}
    assert json.loads(rec.key or b"")["payload"] == {"id": 1001}


def test_include_and_exclude_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="mutually exclusive"):
        _opts(column_include_list=("a",), column_exclude_list=("b",))


# --- column.mask.with.N.chars ---------------------------------------------------------------

def test_mask_replaces_value_with_n_asterisks_and_keeps_string_schema() -> None:
    rec = _insert(_opts(column_mask_with={8: ("INVENTORY.customers.email",)}))  # case-insensitive
    assert _after(rec)["email"] == "********"
    assert _fields(rec)["email"] == {"type": "string", "optional": True, "parameters": {"masked": "true"},
                                     "field": "email"}


def test_mask_zero_gives_empty_string_and_masks_null_too() -> None:
    opts = _opts(column_mask_with={0: (r".*\.email",), 3: (r".*\.bio",)})
    rec = _insert(opts, row=("1", "S", "x@y", None, None, None))
    assert (_after(rec)["email"], _after(rec)["bio"]) == ("", "***")


def test_mask_leaves_non_character_columns_but_marks_them() -> None:
    rec = _insert(_opts(column_mask_with={4: (r".*\.(id|score)",)}))
    assert _after(rec)["id"] == 1001 and _after(rec)["score"] == "A7Y="  # 9.50 as Decimal(3,2)
    assert _fields(rec)["id"]["parameters"] == {"masked": "true"}
    assert json.loads(rec.key or b"")["payload"] == {"id": 1001}  # keys are never mapped


def test_mask_is_anchored() -> None:
    rec = _insert(_opts(column_mask_with={2: ("email",)}))  # does not match inventory.customers.email
    assert _after(rec)["email"] == "sally@example.com"


# --- column.truncate.to.N.chars -------------------------------------------------------------

def test_truncate_cuts_strings_to_n_characters() -> None:
    rec = _insert(_opts(column_truncate_to={5: (r"inventory\.customers\.(bio|email|code)",)}))
    after, fields = _after(rec), _fields(rec)
    assert (after["bio"], after["email"]) == ("Likes", "sally")
    assert fields["bio"] == {"type": "string", "optional": True, "parameters": {"truncateLength": "5"},
                             "field": "bio"}
    # varchar(3) can never exceed 5 characters: Debezium leaves value and schema alone
    assert after["code"] == "ABC" and "parameters" not in fields["code"]


def test_truncate_counts_utf16_units_like_java() -> None:
    rec = _insert(_opts(column_truncate_to={3: (r".*\.bio",)}), row=ROW[:3] + ("a\U0001F600bc",) + ROW[4:])
    assert _after(rec)["bio"] == "a\U0001F600"


def test_truncate_length_may_be_zero_not_negative() -> None:
    rec = _insert(_opts(column_truncate_to={0: (r".*\.bio",)}))
    assert _after(rec)["bio"] == ""
    with pytest.raises(ConfigError, match="0 or more"):
        _opts(column_truncate_to={-1: ("x",)})


# --- column.mask.hash ---------------------------------------------------------------------

def test_hash_v1_digests_java_serialized_string_with_salt() -> None:
    rec = _insert(_opts(column_mask_hash=(HashMask("SHA-256", "CzQMA0cB5K", (r".*\.bio",)),)))
    serialized = b"\xac\xed\x00\x05t\x00\x10Likes long walks"  # ObjectOutputStream.writeObject(String)
    assert _after(rec)["bio"] == hashlib.sha256(b"CzQMA0cB5K" + serialized).hexdigest()
    assert _fields(rec)["bio"]["parameters"] == {"masked": "true"}


def test_hash_v2_digests_utf8_and_is_cut_to_the_column_length() -> None:
    rec = _insert(_opts(column_mask_hash=(HashMask("sha-256", "salty", (r".*\.(bio|code)",), 2),)))
    assert _after(rec)["bio"] == hashlib.sha256(b"saltyLikes long walks").hexdigest()
    assert _after(rec)["code"] == hashlib.sha256(b"saltyABC").hexdigest()[:3]  # varchar(3)


def test_hash_null_stays_null_and_unknown_algorithm_fails() -> None:
    rec = _insert(_opts(column_mask_hash=(HashMask("MD5", "s", (r".*\.bio",)),)), row=ROW[:3] + (None,) + ROW[4:])
    assert _after(rec)["bio"] is None
    with pytest.raises(ConfigError, match="MD2"):
        _opts(column_mask_hash=(HashMask("MD2", "s", ("x",)),))


def test_java_serialization_uses_modified_utf8() -> None:
    assert java_serialized_string("\x00é\U0001F600") == (
        b"\xac\xed\x00\x05t\x00\x0a" + b"\xc0\x80" + b"\xc3\xa9" + b"\xed\xa0\xbd\xed\xb8\x80")


# --- column.propagate.source.type / datatype.propagate.source.type --------------------------

SOURCE_TYPES = TableInfo(2, "public", "test_table", (
    ColumnInfo("pk", 23, "int4", -1, False),
    _varchar("vc", 2),
    ColumnInfo("d", 1700, "numeric", ((3 << 16) | 2) + 4, True),
    ColumnInfo("dzs", 1700, "numeric", ((4 << 16) | 0) + 4, True),
    ColumnInfo("t", 25, "text", -1, True),
), ("pk",))


def test_propagate_source_type_matches_debezium_tests() -> None:
    """``schemasAndValuesFor{String,Numeric}TypesWithSourceColumnTypeInfo`` in Debezium's test suite."""
    opts = _opts(column_propagate_source_type=(".*vc.*", ".*(d|dzs)"), decimal_handling_mode="double")
    rec = _insert(opts, SOURCE_TYPES, ("1", "\u017e\u0161", "1.10", "10", "x"))
    fields = _fields(rec)
    assert fields["vc"] == {"type": "string", "optional": True, "parameters": {
        "__debezium.source.column.type": "VARCHAR", "__debezium.source.column.length": "2",
        "__debezium.source.column.scale": "0", "__debezium.source.column.name": "vc"}, "field": "vc"}
    assert fields["d"]["type"] == "double"
    assert fields["d"]["parameters"] == {
        "__debezium.source.column.type": "NUMERIC", "__debezium.source.column.length": "3",
        "__debezium.source.column.scale": "2", "__debezium.source.column.name": "d"}
    assert fields["dzs"]["parameters"]["__debezium.source.column.length"] == "4"
    assert "parameters" not in fields["t"] and _after(rec)["d"] == 1.1


def test_datatype_propagate_matches_schema_table_typname_and_appends_parameters() -> None:
    rec = _insert(_opts(datatype_propagate_source_type=(r".+\.NUMERIC", r".+\.text")), SOURCE_TYPES,
                  ("1", "ab", "1.10", "10", "x"))
    fields = _fields(rec)
    assert list(fields["d"]["parameters"]) == [
        "scale", "connect.decimal.precision", "__debezium.source.column.type", "__debezium.source.column.length",
        "__debezium.source.column.scale", "__debezium.source.column.name"]
    assert fields["t"]["parameters"]["__debezium.source.column.length"] == "2147483647"
    assert "parameters" not in fields["vc"]


@pytest.mark.parametrize(("column", "expected"), [
    (ColumnInfo("a", 23, "int4", -1, False), (10, 0)),
    (ColumnInfo("a", 1700, "numeric", -1, True), (131089, 0)),
    (ColumnInfo("a", 1114, "timestamp", 3, True), (26, 3)),
    (ColumnInfo("a", 1184, "timestamptz", -1, True), (35, 6)),
    (ColumnInfo("a", 1082, "date", -1, True), (13, 0)),
    (ColumnInfo("a", 701, "float8", -1, True), (17, 17)),
    (ColumnInfo("a", 1015, "_varchar", 14, True, base_type_name="varchar"), (10, 0)),
    (ColumnInfo("a", 9999, "mood", -1, True, type_kind="e"), (2147483647, 0)),
])
def test_source_length_and_scale_follow_pgjdbc(column: ColumnInfo, expected: tuple[int, int]) -> None:
    assert length_and_scale(column) == expected


def test_only_the_first_matching_mapper_applies() -> None:
    opts = _opts(column_truncate_to={3: (r".*\.bio",)}, column_propagate_source_type=(r".*\.bio",))
    rec = _insert(opts)
    assert _fields(rec)["bio"]["parameters"] == {"truncateLength": "3"}  # ColumnMappers.mapperFor: findFirst


# --- message.key.columns --------------------------------------------------------------------

NO_PK = TableInfo(3, "inventory", "purchaseorders", (
    ColumnInfo("pk3", 23, "int4", -1, False), ColumnInfo("pk4", 25, "text", -1, False),
    ColumnInfo("qty", 23, "int4", -1, True),
), ())


def test_message_key_columns_syntax() -> None:
    assert parse_message_key_columns("inventory.customers:pk1,pk2;(.*).purchaseorders:pk3,pk4") == (
        ("inventory.customers", ("pk1", "pk2")), ("(.*).purchaseorders", ("pk3", "pk4")))
    with pytest.raises(ConfigError, match="message.key.columns"):
        _opts(message_key_columns="inventory.customers")


def test_message_key_columns_replace_the_primary_key_in_listed_order() -> None:
    opts = _opts(message_key_columns="inventory.customers:email,first_name;(.*).purchaseorders:pk4,pk3")
    rec = _insert(opts)
    key = json.loads(rec.key or b"")
    assert key["payload"] == {"email": "sally@example.com", "first_name": "Sally"}
    assert key["schema"]["fields"] == [
        {"type": "string", "optional": True, "field": "email"},
        {"type": "string", "optional": False, "field": "first_name"},
    ]
    [po] = TableEncoder(NO_PK, opts).create(("5", "x", "2"), SRC, None)
    assert json.loads(po.key or b"")["payload"] == {"pk4": "x", "pk3": 5}


def test_tables_without_entry_keep_primary_key_or_get_null_key() -> None:
    opts = _opts(message_key_columns="other.table:id")
    assert json.loads(_insert(opts).key or b"")["payload"] == {"id": 1001}
    [po] = TableEncoder(NO_PK, opts).create(("5", "x", "2"), SRC, None)
    assert po.key is None


def test_message_key_change_is_a_key_change() -> None:
    enc = TableEncoder(CUSTOMERS, _opts(message_key_columns=r"inventory\.customers:email"))
    old = ROW
    new = ROW[:2] + ("sally@new.example",) + ROW[3:]
    recs = enc.update("O", old, new, SRC, None)
    assert [_value(r)["payload"]["op"] if r.value else None for r in recs] == ["d", None, "c"]
    assert recs[2].headers == (("__debezium.oldkey", b'{"email":"sally@example.com"}'),)


def test_masked_key_column_stays_clear_in_the_key() -> None:
    opts = _opts(message_key_columns="inventory.customers:email", column_mask_with={3: (r".*\.email",)})
    rec = _insert(opts)
    assert _after(rec)["email"] == "***"
    assert json.loads(rec.key or b"")["payload"] == {"email": "sally@example.com"}


# --- schema.name.adjustment.mode / field.name.adjustment.mode -------------------------------

@pytest.mark.parametrize(("name", "mode", "field", "expected"), [
    ("dbserver1.public.my-table.Value", "none", False, "dbserver1.public.my-table.Value"),
    ("dbserver1.public.my-table.Value", "avro", False, "dbserver1.public.my_table.Value"),
    ("dbserver1.public.my-table.Value", "avro_unicode", False, "dbserver1.public.my_u002dtable.Value"),
    ("my_table", "avro_unicode", False, "my_u005ftable"),
    ("1st", "avro", True, "_1st"),  # Debezium keeps a leading digit after the "_"
    ("5st-col", "avro", False, "_5st_col"),
    ("1st", "avro_unicode", True, "_u0031st"),
    ("a.b", "avro", True, "a_b"),
    ("a.b", "avro", False, "a.b"),
    ("prix€", "avro_unicode", True, "prix_u20ac"),
    ("é", "avro_unicode", True, "_u00e9"),
])
def test_name_adjustment(name: str, mode: str, field: bool, expected: str) -> None:
    assert adjust_name(name, mode, field=field) == expected


def test_adjustment_modes_apply_to_schema_and_field_names() -> None:
    table = TableInfo(4, "public", "my-table", (
        ColumnInfo("id", 23, "int4", -1, False), ColumnInfo("first-name", 25, "text", -1, True)), ("id",))
    opts = _opts(schema_name_adjustment_mode="avro", field_name_adjustment_mode="avro")
    rec = _insert(opts, table, ("1", "x"))
    value = _value(rec)
    assert rec.topic == "dbserver1.public.my-table"  # topic names keep '-'
    assert value["schema"]["name"] == "dbserver1.public.my_table.Envelope"
    assert value["schema"]["fields"][1]["name"] == "dbserver1.public.my_table.Value"
    assert json.loads(rec.key or b"")["schema"]["name"] == "dbserver1.public.my_table.Key"
    assert _after(rec) == {"id": 1, "first_name": "x"}


def test_field_name_collision_is_an_error() -> None:
    table = TableInfo(5, "s", "t", (ColumnInfo("a-b", 25, "text", -1, True), ColumnInfo("a b", 25, "text", -1, True)), ())
    with pytest.raises(ConfigError, match="same field name"):
        TableEncoder(table, _opts(field_name_adjustment_mode="avro"))


def test_bad_adjustment_mode() -> None:
    with pytest.raises(ConfigError, match="avro_unicode"):
        _opts(schema_name_adjustment_mode="avro2")


# --- skipped.operations ---------------------------------------------------------------------

def test_skipped_operations_emit_nothing_and_do_not_count() -> None:
    enc = TableEncoder(CUSTOMERS, _opts(skipped_operations=("t", "d")))
    txn = TransactionContext(7, 100, 0)
    assert enc.truncate(SRC, txn) == []
    assert enc.delete("O", ROW, SRC, txn) == []  # no delete, no tombstone
    [rec] = enc.create(ROW, SRC, txn)
    assert _value(rec)["payload"]["transaction"]["total_order"] == 1
    moved = enc.update("O", ROW, ("1002",) + ROW[1:], SRC, txn)  # key change: only the create remains
    assert [_value(r)["payload"]["op"] for r in moved] == ["c"]
    with pytest.raises(ConfigError, match="skipped.operations"):
        _opts(skipped_operations=("x",))


def test_propagated_unconstrained_numeric_in_snapshot_rows() -> None:
    """Debezium 3.6.3: snapshot rows describe an unconstrained numeric from JDBC metadata (length 0, no
    scale), streamed rows from the RELATION message (length 131089, scale 0)."""
    table = TableInfo(3, "public", "p", (ColumnInfo("id", 23, "int4", -1, False),
                                         ColumnInfo("n", 1700, "numeric", -1, True)), ("id",))
    streamed = _fields(_insert(_opts(column_propagate_source_type=(".*",)), table, ("1", "1.5")))["n"]
    snapshot = _fields(_insert(_opts(column_propagate_source_type=(".*",), snapshot_reads=True), table, ("1", "1.5")))["n"]
    assert streamed["parameters"] == {"__debezium.source.column.type": "NUMERIC", "__debezium.source.column.length": "131089",
                                      "__debezium.source.column.scale": "0", "__debezium.source.column.name": "n"}
    assert snapshot["parameters"] == {"__debezium.source.column.type": "NUMERIC", "__debezium.source.column.length": "0",
                                      "__debezium.source.column.name": "n"}
