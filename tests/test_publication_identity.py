"""Installing cdcd never breaks the application: tables without a replica identity.

PostgreSQL rejects UPDATE and DELETE on a table without a replica identity once a
publication publishes its updates or deletes. The publication cdcd creates publishes only
inserts and truncates of such tables (in ``<publication>_insert_only``, streamed too);
``cdcd check`` names them; a publication the user made is left alone, with a warning.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess
from tests.fix_kafka import consume_all
from tests.test_e2e_errors import run_cdcd

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
    warning = proc.wait_for("publication_insert_only")
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
    assert pubs == {"cdcd": True, "cdcd_insert_only": False}

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
