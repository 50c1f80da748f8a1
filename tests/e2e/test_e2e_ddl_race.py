"""Rows written before an ALTER TABLE but decoded after it keep the schema of their time.

cdcd starts after the whole workload ran, so every row is decoded while the live
catalog already shows the last shape of the table. The Relation message in the
stream says what the rows that follow look like; the expectations below are what
real Debezium 3.6.3 emits for the same workload: column names, types and type
modifiers from the Relation message, nullability and defaults read from the live
catalog by column name (a column the catalog no longer has is optional, no default).
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess, StdoutRun

pytestmark = [pytest.mark.pg]


def fields(line: dict[str, Any], image: str = "after") -> dict[str, tuple[Any, ...]]:
    """{column: (type, optional, logical name, default)} of the value schema's ``before``/``after``."""
    (struct,) = [f for f in line["value"]["schema"]["fields"] if f["field"] == image]
    return {f["field"]: (f["type"], f["optional"], f.get("name"), f.get("default")) for f in struct["fields"]}


def decimal(encoded: str, scale: int) -> Decimal:
    return Decimal(int.from_bytes(base64.b64decode(encoded), "big", signed=True)).scaleb(-scale)


def prepare(pg_db: Any, *statements: str) -> None:
    """Publication and slot first, so the workload is decoded only when cdcd starts afterwards."""
    pg_db.execute("CREATE PUBLICATION cdcd FOR ALL TABLES")
    pg_db.execute("SELECT pg_create_logical_replication_slot('cdcd', 'pgoutput')")
    for statement in statements:
        pg_db.execute(statement)


def test_rows_before_alter_type_keep_their_types(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, n numeric(10,2) NOT NULL DEFAULT 1.5, i int,"
                  " v varchar(20) DEFAULT 'x')")
    pg_db.execute("ALTER TABLE t REPLICA IDENTITY FULL")
    prepare(pg_db,
            "INSERT INTO t VALUES (1, 12.34, 5, 'a')",
            "UPDATE t SET n = 23.45 WHERE id = 1",
            "ALTER TABLE t ALTER COLUMN n TYPE text, ALTER COLUMN i TYPE bigint, ALTER COLUMN v TYPE varchar(50)",
            "ALTER TABLE t ALTER COLUMN n DROP NOT NULL, ALTER COLUMN i SET NOT NULL, ALTER COLUMN v SET DEFAULT 'y'",
            "INSERT INTO t VALUES (2, 'abc', 6, 'b')")
    run = StdoutRun(cdcd_procs, pg_db)
    inserted, updated, later = run.wait(3)
    run.stop()
    old_shape = {
        # The type is the Relation message's (numeric(10,2), int4); optional and default are today's.
        "id": ("int32", False, None, None),
        "n": ("bytes", True, "org.apache.kafka.connect.data.Decimal", base64.b64encode(b"\x00\x96").decode()),
        "i": ("int32", False, None, None),
        "v": ("string", True, None, "y"),
    }
    assert fields(inserted) == old_shape
    assert fields(updated) == fields(updated, "before") == old_shape
    after = inserted["value"]["payload"]["after"]
    assert decimal(after["n"], 2) == Decimal("12.34") and after["i"] == 5
    payload = updated["value"]["payload"]
    assert decimal(payload["before"]["n"], 2) == Decimal("12.34")
    assert decimal(payload["after"]["n"], 2) == Decimal("23.45")
    assert fields(later) == {"id": ("int32", False, None, None), "n": ("string", True, None, "1.5"),
                             "i": ("int64", False, None, None), "v": ("string", True, None, "y")}
    assert later["value"]["payload"]["after"] == {"id": 2, "n": "abc", "i": 6, "v": "b"}


def test_drop_rename_and_add_column_apply_from_their_position(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY, old text, gone int)")
    prepare(pg_db,
            "INSERT INTO t VALUES (1, 'o1', 9)",
            "ALTER TABLE t DROP COLUMN gone",
            "INSERT INTO t VALUES (2, 'o2')",
            "ALTER TABLE t RENAME COLUMN old TO renamed",
            "INSERT INTO t VALUES (3, 'o3')",
            "ALTER TABLE t ADD COLUMN added int NOT NULL DEFAULT 42",
            "INSERT INTO t VALUES (4, 'o4', 43)")
    run = StdoutRun(cdcd_procs, pg_db)
    lines = run.wait(4)
    run.stop()
    assert [fields(line) for line in lines] == [
        # gone: dropped since, so the catalog knows nothing of it any more.
        {"id": ("int32", False, None, None), "old": ("string", True, None, None),
         "gone": ("int32", True, None, None)},
        {"id": ("int32", False, None, None), "old": ("string", True, None, None)},
        {"id": ("int32", False, None, None), "renamed": ("string", True, None, None)},
        {"id": ("int32", False, None, None), "renamed": ("string", True, None, None),
         "added": ("int32", False, None, 42)},
    ]
    assert [line["value"]["payload"]["after"] for line in lines] == [
        {"id": 1, "old": "o1", "gone": 9}, {"id": 2, "old": "o2"}, {"id": 3, "renamed": "o3"},
        {"id": 4, "renamed": "o4", "added": 43},
    ]


def test_primary_key_columns_the_rows_do_not_have_are_left_out(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    pg_db.execute("CREATE TABLE t (a int NOT NULL, v text, PRIMARY KEY (a))")
    prepare(pg_db,
            "INSERT INTO t VALUES (1, 'x')",
            "ALTER TABLE t ADD COLUMN b int NOT NULL DEFAULT 0",
            "ALTER TABLE t DROP CONSTRAINT t_pkey, ADD PRIMARY KEY (a, b)",
            "INSERT INTO t VALUES (2, 'y', 3)")
    run = StdoutRun(cdcd_procs, pg_db)
    first, second = run.wait(2)
    run.stop()
    # Debezium keeps the key columns the Relation message has (retainAll), so the old row is keyed by a.
    assert first["key"]["payload"] == {"a": 1}
    assert second["key"]["payload"] == {"a": 2, "b": 3}
