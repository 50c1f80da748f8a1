"""DDL change events against a real PostgreSQL: install, one event per DDL, in order with the rows."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess, StdoutRun

pytestmark = [pytest.mark.pg]

ENV = {"CDCD_SCHEMA_CHANGES_MODE": "event-trigger"}


def cdcd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDCD_")}
    return subprocess.run([sys.executable, "-m", "cdcd", *args], capture_output=True, text=True, timeout=60, env=env)


def install(pg_db: Any) -> None:
    result = cdcd("install-ddl-capture", "--dsn", pg_db.dsn)
    assert result.returncode == 0, result.stderr
    assert "installed: event triggers cdcd_ddl_command_end, cdcd_sql_drop" in result.stdout


def summary(line: dict[str, Any]) -> tuple[Any, ...]:
    """(topic, what): a schema change's (type, columns) per table, or a row's op and field names."""
    payload = line["value"]["payload"]
    if line["topic"] == "ev":
        return ("ev", tuple((c["type"], c["id"], c["table"] and tuple(col["name"] for col in c["table"]["columns"]))
                            for c in payload["tableChanges"]))
    image = payload["after"] or payload["before"]
    return (line["topic"], payload["op"], tuple(image))


def test_each_ddl_is_one_event_in_order_with_the_rows(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    install(pg_db)
    run = StdoutRun(cdcd_procs, pg_db, env=ENV)
    statements = [
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "INSERT INTO t VALUES (1, 'a')",
        "ALTER TABLE t ADD COLUMN n int DEFAULT 7",
        "INSERT INTO t VALUES (2, 'b', 8)",
        "ALTER TABLE t RENAME COLUMN v TO label",
        "INSERT INTO t VALUES (3, 'c', 9)",
        "ALTER TABLE t ALTER COLUMN n TYPE text",
        "INSERT INTO t VALUES (4, 'd', 'ten')",
        "ALTER TABLE t DROP COLUMN label",
        "INSERT INTO t VALUES (5, 'eleven')",
        "BEGIN; ALTER TABLE t ADD COLUMN gone int; ROLLBACK",
        "DROP TABLE t",
    ]
    for statement in statements:
        pg_db.execute(statement)
    lines = run.through_marker(pg_db)
    run.stop()
    lines = [line for line in lines if line["value"] is not None]  # tombstones: none expected
    tid = '"{}"."public"."t"'.format(pg_db.dbname)
    assert [summary(line) for line in lines] == [
        ("ev", (("CREATE", tid, ("id", "v")),)),
        ("ev.public.t", "c", ("id", "v")),
        ("ev", (("ALTER", tid, ("id", "v", "n")),)),
        ("ev.public.t", "c", ("id", "v", "n")),
        ("ev", (("ALTER", tid, ("id", "label", "n")),)),
        ("ev.public.t", "c", ("id", "label", "n")),
        ("ev", (("ALTER", tid, ("id", "label", "n")),)),
        ("ev.public.t", "c", ("id", "label", "n")),
        ("ev", (("ALTER", tid, ("id", "n")),)),
        ("ev.public.t", "c", ("id", "n")),
        ("ev", (("DROP", tid, None),)),
    ]
    changes = [line for line in lines if line["topic"] == "ev"]
    assert [c["value"]["payload"]["ddl"] for c in changes] == [s for s in statements if not s.startswith(
        ("INSERT", "BEGIN"))]
    rows = [line["value"]["payload"]["after"] for line in lines if line["topic"] == "ev.public.t"]
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "b", "n": 8}, {"id": 3, "label": "c", "n": 9},
                    {"id": 4, "label": "d", "n": "ten"}, {"id": 5, "n": "eleven"}]
    first = changes[0]
    assert first["key"]["payload"] == {"databaseName": pg_db.dbname}
    assert first["key"]["schema"]["name"] == "io.debezium.connector.postgresql.SchemaChangeKey"
    value = first["value"]
    assert value["schema"]["name"] == "io.debezium.connector.postgresql.SchemaChangeValue"
    payload = value["payload"]
    assert (payload["databaseName"], payload["schemaName"]) == (pg_db.dbname, "public")
    assert payload["source"]["table"] == "t" and isinstance(payload["source"]["txId"], int)
    table = payload["tableChanges"][0]["table"]
    assert table["primaryKeyColumnNames"] == ["id"]
    assert [(c["name"], c["jdbcType"], c["typeName"], c["optional"], c["position"]) for c in table["columns"]] == [
        ("id", 4, "int4", False, 1), ("v", 12, "text", True, 2)]
    n_column = changes[3]["value"]["payload"]["tableChanges"][0]["table"]["columns"][2]
    assert (n_column["name"], n_column["typeName"], n_column["defaultValueExpression"]) == ("n", "text", "7")


def test_ddl_and_rows_in_one_transaction_and_by_an_ordinary_role(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    install(pg_db)
    pg_db.execute("CREATE ROLE cdcd_app LOGIN")
    pg_db.execute(f'GRANT CREATE ON DATABASE "{pg_db.dbname}" TO cdcd_app; GRANT CREATE ON SCHEMA public TO cdcd_app')
    pg_db.execute("CREATE TABLE other (id int PRIMARY KEY)")
    run = StdoutRun(cdcd_procs, pg_db, "--slot", "ddl2", env={**ENV, "CDCD_TABLE_EXCLUDE_LIST": "public\\.other"})
    try:
        with pg_db.connect(user="cdcd_app") as conn:
            conn.execute("BEGIN")
            conn.execute("CREATE TABLE app (id int PRIMARY KEY)")
            conn.execute("INSERT INTO app VALUES (1)")
            conn.execute("ALTER TABLE app ADD COLUMN note text")
            conn.execute("INSERT INTO app VALUES (2, 'x')")
            conn.execute("COMMIT")
        pg_db.execute("ALTER TABLE other ADD COLUMN ignored int")  # excluded table: no event
        pg_db.execute("CREATE INDEX ON app (note)")
        lines = run.through_marker(pg_db)
        run.stop()
        assert [summary(line)[:2] for line in lines] == [
            ("ev", (("CREATE", f'"{pg_db.dbname}"."public"."app"', ("id",)),)),
            ("ev.public.app", "c"), ("ev", (("ALTER", f'"{pg_db.dbname}"."public"."app"', ("id", "note")),)),
            ("ev.public.app", "c"), ("ev", (("ALTER", f'"{pg_db.dbname}"."public"."app"', ("id", "note")),))]
        txids = {line["value"]["payload"]["source"]["txId"] for line in lines[:4]}
        assert len(txids) == 1, "the DDL events carry their transaction's id"
    finally:
        pg_db.execute("DROP TABLE IF EXISTS app")
        pg_db.execute(f'REVOKE ALL ON DATABASE "{pg_db.dbname}" FROM cdcd_app; REVOKE ALL ON SCHEMA public FROM cdcd_app')
        pg_db.execute("DROP ROLE cdcd_app")


def test_without_the_mode_ddl_messages_are_plain_messages(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    install(pg_db)
    run = StdoutRun(cdcd_procs, pg_db)
    pg_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    lines = run.wait(1)
    run.stop()
    assert lines[0]["topic"] == "ev.message" and lines[0]["key"]["payload"] == {"prefix": "cdcd.ddl"}


def test_install_check_uninstall(pg_db: Any) -> None:
    check = ["check", "--dsn", pg_db.dsn, "--sink", "stdout"]
    env_check = cdcd_env({"CDCD_SCHEMA_CHANGES_MODE": "event-trigger"})
    out = subprocess.run([sys.executable, "-m", "cdcd", *check], capture_output=True, text=True, timeout=60,
                         env=env_check)
    assert out.returncode == 1 and "FAIL ddl capture: schema.changes.mode=event-trigger but the event triggers are " \
                                   "missing: run cdcd install-ddl-capture" in out.stdout
    install(pg_db)
    install(pg_db)  # again: replaces, does not fail
    out = subprocess.run([sys.executable, "-m", "cdcd", *check], capture_output=True, text=True, timeout=60,
                         env=env_check)
    assert out.returncode == 0 and "ok   ddl capture: event triggers installed" in out.stdout
    assert "ddl capture" not in cdcd(*check).stdout  # mode none: no line
    result = cdcd("uninstall-ddl-capture", "--dsn", pg_db.dsn)
    assert result.returncode == 0 and "dropped: event trigger cdcd_ddl_command_end" in result.stdout
    assert pg_db.execute("SELECT count(*) FROM pg_event_trigger")[0][0] == 0
    assert pg_db.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'cdcd%%'")[0][0] == 0
    assert "nothing to drop" in cdcd("uninstall-ddl-capture", "--dsn", pg_db.dsn).stdout


def test_install_needs_a_superuser(pg_db: Any) -> None:
    pg_db.execute("CREATE ROLE cdcd_weak LOGIN")
    try:
        result = cdcd("install-ddl-capture", "--dsn", pg_db.dsn_with(user="cdcd_weak"))
        assert result.returncode == 3
        assert "event triggers need a superuser" in result.stderr
    finally:
        pg_db.execute("DROP ROLE cdcd_weak")


def cdcd_env(extra: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CDCD_")}, **extra}


@pytest.mark.parametrize(("statement", "expected"), [
    ("CREATE TABLE n AS SELECT 1 AS x", [("CREATE", "public", "n")]),
    ("SELECT 1 AS x INTO n", [("CREATE", "public", "n")]),
    ("CREATE TABLE p (id int, d date) PARTITION BY RANGE (d)", [("CREATE", "public", "p")]),
    ("ALTER TABLE t RENAME TO t2", [("ALTER", "public", "t2")]),
    ("ALTER TABLE t SET SCHEMA s", [("ALTER", "s", "t")]),
    ("ALTER TABLE t ADD COLUMN a int, ADD COLUMN b int", [("ALTER", "public", "t")]),
    ("COMMENT ON TABLE t IS 'x'", [("ALTER", "public", "t")]),
    ("CREATE INDEX ON t (id, v)", [("ALTER", "public", "t")]),
    ("DROP TABLE t, u", [("DROP", "public", "t"), ("DROP", "public", "u")]),
    ("DROP SCHEMA s CASCADE", [("DROP", "s", "w")]),
    ("CREATE TEMP TABLE tmp (id int)", []),
    ("CREATE UNLOGGED TABLE ul (id int)", []),
    ("CREATE VIEW vw AS SELECT * FROM t", []),
    ("DROP INDEX t_v", []),
    ("ALTER TABLE t DROP COLUMN v", [("ALTER", "public", "t")]),
])
def test_which_commands_are_captured(pg_db: Any, statement: str, expected: list[tuple[str, str, str]]) -> None:
    from cdcd.debezium.schema_change import parse
    from cdcd.decode.messages import LogicalMessage
    from cdcd.decode.pgoutput import PgOutputDecoder

    install(pg_db)
    pg_db.execute("CREATE TABLE t (id serial PRIMARY KEY, v text); CREATE INDEX t_v ON t (v); "
                  "CREATE TABLE u (id int); CREATE SCHEMA s; CREATE TABLE s.w (id int)")
    pg_db.execute("CREATE PUBLICATION probe FOR TABLE u")
    pg_db.execute("SELECT pg_create_logical_replication_slot('probe', 'pgoutput')")
    pg_db.execute(statement)
    rows = pg_db.execute("SELECT data FROM pg_logical_slot_get_binary_changes('probe', NULL, NULL, "
                         "'proto_version', '1', 'publication_names', 'probe', 'messages', 'true') "
                         "WHERE get_byte(data, 0) = 77")  # 'M'
    decoded = [PgOutputDecoder().decode(bytes(raw)) for (raw,) in rows]
    assert all(isinstance(m, LogicalMessage) and m.prefix == "cdcd.ddl" and m.transactional for m in decoded)
    messages = [parse(m.content) for m in decoded if isinstance(m, LogicalMessage)]
    assert len(messages) == (1 if expected else 0)
    if expected:
        assert sorted((t.type, t.schema, t.name) for t in messages[0].tables) == expected
        assert messages[0].ddl == statement
