"""``toast.handling.mode=refetch`` on a throwaway cluster: the re-read never predates the change."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cdcd.decode.messages import UNCHANGED_TOAST, Relation, RelationColumn, Update
from cdcd.source.catalog import connect
from cdcd.toast.metrics import ToastMetrics
from cdcd.toast.refetch import Refetcher
from tests.fix_pg import PgDatabase

pytestmark = pytest.mark.pg


def docs(pg_db: PgDatabase) -> Relation:
    pg_db.execute("CREATE TABLE docs (id int PRIMARY KEY, t text, n int); INSERT INTO docs VALUES (1, 'old', 0)")
    ((oid,),) = pg_db.execute("SELECT 'docs'::regclass::oid")
    return Relation(int(oid), "public", "docs", "d", (
        RelationColumn(True, "id", 23, -1), RelationColumn(False, "t", 25, -1), RelationColumn(False, "n", 23, -1)))


def test_the_first_re_read_waits_until_the_transaction_is_visible(pg_db: PgDatabase) -> None:
    """The walsender may send a transaction before other sessions see it committed."""
    relation = docs(pg_db)
    with pg_db.connect() as writer, connect(pg_db.dsn) as conn:
        writer.execute("BEGIN")
        writer.execute("UPDATE docs SET t = 'new' WHERE id = 1")
        writer.execute("UPDATE docs SET n = 1 WHERE id = 1")  # t unchanged: pgoutput would send 'u'
        ((xid,),) = writer.execute("SELECT txid_current() % 4294967296").fetchall()
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # the writer's commit becomes visible meanwhile
            waits.append(seconds)
            if len(waits) == 2:
                writer.execute("COMMIT")

        refetch = Refetcher(conn, ToastMetrics.of(CollectorRegistry()), waits_s=(0.001, 0.002, 0.005), sleep=sleep)
        refetch.began(int(xid))
        out: Any = refetch.change(Update(relation, None, None, ("1", UNCHANGED_TOAST, "1")), 0)
        assert out.new == ("1", "new", "1"), "the value of the change's transaction, not the one before it"
        assert len(waits) == 2
        # Later re-reads of the same transaction do not ask again.
        assert refetch.change(Update(relation, None, None, ("1", UNCHANGED_TOAST, "1")), 0).new[1] == "new"
        assert len(waits) == 2


def test_a_transaction_already_visible_costs_one_question(pg_db: PgDatabase) -> None:
    relation = docs(pg_db)
    ((xid,),) = pg_db.execute("SELECT txid_current() % 4294967296")  # committed at once (autocommit)
    with connect(pg_db.dsn) as conn:
        waits: list[float] = []
        refetch = Refetcher(conn, ToastMetrics.of(CollectorRegistry()), sleep=waits.append)
        refetch.began(int(xid))
        out: Any = refetch.change(Update(relation, None, None, ("1", UNCHANGED_TOAST, "0")), 0)
    assert out.new == ("1", "old", "0") and waits == []
