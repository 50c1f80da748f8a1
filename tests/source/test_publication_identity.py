"""Installing cdcd never breaks the application: tables without a replica identity.

PostgreSQL rejects UPDATE and DELETE on a table without a replica identity once a
publication publishes its updates or deletes. cdcd creates ``<publication>`` FOR ALL TABLES
publishing inserts and truncates, and ``<publication>_updates`` publishing updates and
deletes of exactly the tables with a replica identity, kept in step by an event trigger in
each DDL's own transaction (or, without a superuser, refreshed with a window). ``cdcd
check`` names blocked tables and the mode; a publication the user made is left alone.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.test_e2e_errors import run_cdcd
from tests.fix_cdcd import CdcdProcess, StdoutRun
from tests.fix_kafka import consume_all

pytestmark = [pytest.mark.pg]


def _schema(pg_db: Any) -> None:
    pg_db.execute("CREATE TABLE withpk (id int PRIMARY KEY, v text)")
    pg_db.execute("CREATE TABLE nopk (a int, b text)")
    pg_db.execute("CREATE TABLE full_ident (a int, b text)")
    pg_db.execute("ALTER TABLE full_ident REPLICA IDENTITY FULL")
    pg_db.execute("INSERT INTO nopk VALUES (0, 'before')")


@pytest.mark.kafka
def test_application_update_and_delete_keep_working_on_a_table_without_identity(
        pg_db: Any, kafka_broker: Any, cdcd_procs: list) -> None:
    _schema(pg_db)
    prefix = f"id{uuid.uuid4().hex[:8]}"
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--bootstrap-servers", kafka_broker.bootstrap,
                        "--topic-prefix", prefix], env={"CDCD_LOG_LEVEL": "info"})
    cdcd_procs.append(proc)
    proc.wait_for("streaming", timeout=60)
    warning = proc.wait_for("publication_without_updates")
    assert warning["tables"] == ["public.nopk"] and "REPLICA IDENTITY FULL" in warning["detail"]
    # The application's own statements: none of them is rejected.
    pg_db.execute("INSERT INTO nopk VALUES (1, 'one')")
    pg_db.execute("UPDATE nopk SET b = 'uno' WHERE a = 1")
    pg_db.execute("DELETE FROM nopk WHERE a = 0")
    pg_db.execute("INSERT INTO withpk VALUES (1, 'x')")
    pg_db.execute("UPDATE withpk SET v = 'y' WHERE id = 1")
    pg_db.execute("INSERT INTO full_ident VALUES (1, 'f')")
    pg_db.execute("UPDATE full_ident SET b = 'g'")
    pubs = dict(pg_db.execute("SELECT pubname, pubupdate FROM pg_publication"))
    assert pubs == {"cdcd": False, "cdcd_updates": True}

    nopk = consume_all(kafka_broker.bootstrap, f"{prefix}.public.nopk", expect=2, timeout=30)
    # The snapshot row and the streamed insert; its update and delete are not published.
    assert sorted((r.json()["payload"]["op"], r.json()["payload"]["after"]["a"]) for r in nopk) == [("c", 1), ("r", 0)]
    withpk = consume_all(kafka_broker.bootstrap, f"{prefix}.public.withpk", expect=2, timeout=30)
    assert [r.json()["payload"]["op"] for r in withpk] == ["c", "u"]
    full = consume_all(kafka_broker.bootstrap, f"{prefix}.public.full_ident", expect=2, timeout=30)
    assert sorted(r.json()["payload"]["op"] for r in full) == ["c", "u"]  # no key: any partition, any order
    assert proc.terminate() == 0


def test_check_warns_before_and_fails_on_a_publication_that_blocks_writes(pg_db: Any) -> None:
    _schema(pg_db)
    result = run_cdcd("check", "--dsn", pg_db.dsn, "--sink", "stdout")
    line = next(x for x in result.stdout.splitlines() if "replica identity" in x)
    assert line.startswith("warn") and "public.nopk" in line and "full_ident" not in line, line
    assert result.returncode == 0, result.stdout

    pg_db.execute("CREATE PUBLICATION cdcd FOR ALL TABLES")
    result = run_cdcd("check", "--dsn", pg_db.dsn, "--sink", "stdout")
    line = next(x for x in result.stdout.splitlines() if "replica identity" in x)
    assert line.startswith("FAIL") and "public.nopk" in line and "withpk" not in line, line
    assert "primary key" in line and "REPLICA IDENTITY FULL" in line and "USING INDEX" in line
    assert result.returncode == 1


def test_an_existing_publication_is_left_alone_with_a_warning(pg_db: Any, cdcd_procs: list) -> None:
    _schema(pg_db)
    pg_db.execute("CREATE PUBLICATION cdcd FOR ALL TABLES")
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--sink", "stdout"], env={"CDCD_LOG_LEVEL": "info"})
    cdcd_procs.append(proc)
    warning = proc.wait_for("publication_blocks_application_writes", timeout=60)
    assert warning["tables"] == ["public.nopk"]
    proc.wait_for("streaming", timeout=60)
    assert [r[0] for r in pg_db.execute("SELECT pubname FROM pg_publication")] == ["cdcd"]
    assert proc.terminate() == 0


def _ops(lines: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """(table, op, key or row) of each change event, in stream order."""
    out = []
    for line in lines:
        payload = line["value"] and line["value"]["payload"]
        if payload is None or "op" not in payload:
            continue
        image = payload["after"] or payload["before"]
        out.append((line["topic"].split(".", 1)[1], payload["op"], image and next(iter(image.values()))))
    return out


LAGGED_WORKLOAD = [
    # A table created while cdcd is down, written at once: nothing of it may be lost.
    "CREATE TABLE later (id int PRIMARY KEY, v text)",
    "INSERT INTO later VALUES (1, 'a'), (2, 'b')", "UPDATE later SET v = 'a2' WHERE id = 1",
    "DELETE FROM later WHERE id = 2",
    # Created and written in one transaction.
    "BEGIN; CREATE TABLE onetx (id int PRIMARY KEY); INSERT INTO onetx VALUES (1); UPDATE onetx SET id = 5; "
    "DELETE FROM onetx; COMMIT",
    # Without an identity: the application's UPDATE and DELETE work; its insert is captured.
    "CREATE TABLE nokey (a int, b text)", "INSERT INTO nokey VALUES (1, 'x'), (2, 'y')",
    "UPDATE nokey SET b = 'z' WHERE a = 1", "DELETE FROM nokey WHERE a = 2",
    # It gains a primary key: its updates and deletes are captured from then on.
    "ALTER TABLE nokey ADD PRIMARY KEY (a)", "UPDATE nokey SET b = 'w' WHERE a = 1",
    # It loses it again: the application's UPDATE keeps working (not captured).
    "ALTER TABLE nokey DROP CONSTRAINT nokey_pkey", "UPDATE nokey SET b = 'v' WHERE a = 1",
    "INSERT INTO nokey VALUES (3, 'three')",
    # An identity through an index, then the index dropped: writes keep working.
    "CREATE TABLE viaindex (a int NOT NULL, b text)", "CREATE UNIQUE INDEX viaindex_a ON viaindex (a)",
    "ALTER TABLE viaindex REPLICA IDENTITY USING INDEX viaindex_a", "INSERT INTO viaindex VALUES (1, 'x')",
    "UPDATE viaindex SET b = 'y'", "DROP INDEX viaindex_a", "UPDATE viaindex SET b = 'z'",
    "DELETE FROM viaindex",
    # A partition created later: captured as itself.
    "CREATE TABLE parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k)",
    "CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10)",
    "INSERT INTO parted VALUES (1, 1)", "UPDATE parted SET id = 2", "DELETE FROM parted",
    "CREATE TABLE last (id int PRIMARY KEY)", "INSERT INTO last VALUES (9)",
    # A rolled-back DDL leaves the membership as it was.
    "BEGIN; CREATE TABLE rolled (id int PRIMARY KEY); ROLLBACK",
]
LAGGED_EVENTS = [
    ("public.later", "c", 1), ("public.later", "c", 2), ("public.later", "u", 1), ("public.later", "d", 2),
    ("public.onetx", "c", 1), ("public.onetx", "d", 1), ("public.onetx", "c", 5), ("public.onetx", "d", 5),
    ("public.nokey", "c", 1), ("public.nokey", "c", 2),
    ("public.nokey", "u", 1),
    ("public.nokey", "c", 3),
    ("public.viaindex", "c", 1), ("public.viaindex", "u", 1),
    ("public.parted_1", "c", 1), ("public.parted_1", "d", 1), ("public.parted_1", "c", 2), ("public.parted_1", "d", 2),
    ("public.last", "c", 9),
]


def test_tables_created_later_are_captured_with_no_window_while_cdcd_lags(pg_db: Any, cdcd_procs: list) -> None:
    """The workload runs while cdcd is stopped: the stream is decoded long after each DDL committed."""
    first = StdoutRun(cdcd_procs, pg_db, env={"CDCD_LOG_LEVEL": "info"})
    first.proc.wait_for("publication_sync_installed")
    first.stop()
    for statement in LAGGED_WORKLOAD:
        pg_db.execute(statement)  # none of them may be rejected
    assert pg_db.execute("SELECT pubname, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate "
                         "FROM pg_publication ORDER BY 1") == [
        ("cdcd", True, True, False, False, True), ("cdcd_updates", False, False, True, True, False)]
    members = {r[0] for r in pg_db.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = 'cdcd_updates'")}
    assert members == {"later", "onetx", "parted_1", "last"}
    run = StdoutRun(cdcd_procs, pg_db)
    tombstones = len([e for e in LAGGED_EVENTS if e[1] == "d"])
    lines = run.wait(len(LAGGED_EVENTS) + tombstones)
    run.stop()
    assert _ops(lines) == LAGGED_EVENTS


def test_check_says_the_event_trigger_keeps_the_publications_in_step(pg_db: Any, cdcd_procs: list) -> None:
    run = StdoutRun(cdcd_procs, pg_db, env={"CDCD_LOG_LEVEL": "info"})
    run.proc.wait_for("publication_sync_installed")
    run.stop()
    result = run_cdcd("check", "--dsn", pg_db.dsn, "--sink", "stdout")
    line = next(x for x in result.stdout.splitlines() if "publication sync" in x)
    assert line.startswith("ok") and "cdcd_publication_sync" in line and "no window" in line, line
    assert result.returncode == 0, result.stdout


def test_without_a_superuser_the_updates_publication_is_refreshed(pg_db: Any, cdcd_procs: list) -> None:
    """filtered mode by a role that owns its tables but may not create event triggers: a window, warned about."""
    role = f"cdcd_owner_{uuid.uuid4().hex[:8]}"
    pg_db.execute(f"CREATE ROLE {role} LOGIN REPLICATION")
    try:
        pg_db.execute(f'GRANT CREATE ON DATABASE "{pg_db.dbname}" TO {role}; GRANT CREATE ON SCHEMA public TO {role}')
        with pg_db.connect(user=role) as conn:
            conn.execute("CREATE TABLE t (id int NOT NULL, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'a')")
        run = StdoutRun(cdcd_procs, pg_db, "--dsn", pg_db.dsn_with(user=role),
                        env={"CDCD_LOG_LEVEL": "info", "CDCD_PUBLICATION_AUTOCREATE_MODE": "filtered",
                             "CDCD_TABLE_INCLUDE_LIST": r"public\.t"})
        warning = run.proc.wait_for("publication_sync_window")
        assert "superuser" in warning["detail"] and "5 s" in warning["detail"]
        with pg_db.connect(user=role) as conn:
            conn.execute("UPDATE t SET v = 'not captured, not rejected'")
            conn.execute("ALTER TABLE t ADD PRIMARY KEY (id)")
        run.proc.wait_for("publication_refreshed", timeout=60)
        with pg_db.connect(user=role) as conn:
            conn.execute("UPDATE t SET v = 'b'")
        lines = run.wait(2)
        result = run_cdcd("check", "--dsn", pg_db.dsn_with(user=role), "--sink", "stdout",
                          CDCD_PUBLICATION_AUTOCREATE_MODE="filtered")
        run.stop()
        assert [(p["op"], p["after"]["v"]) for p in (line["value"]["payload"] for line in lines)] == [
            ("r", "a"), ("u", "b")]
        line = next(x for x in result.stdout.splitlines() if "publication sync" in x)
        assert line.startswith("warn") and "superuser" in line, line
    finally:
        pg_db.execute(f"DROP OWNED BY {role}")
        pg_db.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("given, main, updates", [
    (None, "insert, truncate", "update, delete"),  # not given: everything published, truncates skipped in cdcd
    ("t", "insert", "update, delete"),
    ("u", "insert, truncate", "delete"),
    ("none", "insert, truncate", "update, delete"),
    ("c,u,d,t", "", ""),
])
def test_a_given_skipped_operations_leaves_those_actions_out_of_the_publications(
        given: str | None, main: str, updates: str) -> None:
    from cdcd.config import load
    from cdcd.source.publication import publish_actions

    env = {} if given is None else {"CDCD_SKIPPED_OPERATIONS": given}
    assert publish_actions(load(env=env)) == (main, updates)
    # From a Debezium connector config as from cdcd's own sources.
    base = {} if given is None else {"skipped.operations": tuple(o for o in given.split(",") if o != "none")}
    assert publish_actions(load(env={}, base=base)) == (main, updates)


def test_inserts_stay_published_for_the_signal_table() -> None:
    from cdcd.config import load
    from cdcd.source.publication import publish_actions

    env = {"CDCD_SKIPPED_OPERATIONS": "c", "CDCD_SIGNAL_DATA_COLLECTION": "public.signals"}
    assert publish_actions(load(env=env)) == ("insert, truncate", "update, delete")


def test_the_created_publications_publish_what_is_not_skipped(pg_db: Any, cdcd_procs: list) -> None:
    _schema(pg_db)
    proc = CdcdProcess(["run", "--dsn", pg_db.dsn, "--sink", "stdout"],
                       env={"CDCD_LOG_LEVEL": "info", "CDCD_SKIPPED_OPERATIONS": "u,t"})
    cdcd_procs.append(proc)
    created = proc.wait_for("publication_created", timeout=60)
    assert (created["publish"], created["updates_publish"]) == ("insert", "delete")
    proc.wait_for("streaming", timeout=60)
    flags = {row[0]: row[1:] for row in pg_db.execute(
        "SELECT pubname, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication")}
    assert flags == {"cdcd": (True, False, False, False), "cdcd_updates": (False, False, True, False)}
    assert proc.terminate() == 0
