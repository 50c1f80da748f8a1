"""Partitioned tables, snapshot and stream, as real Debezium 3.6.3 emits them.

Debezium's snapshot reads a partitioned table as itself (all rows) and as each of its
partitions, whatever ``publish_via_partition_root`` says; the stream follows the
publication: the root's topic with ``publish.via.partition.root=true`` (which the
auto-created publication then carries), each partition's topic without it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fix_cdcd import CdcdProcess, StdoutRun

pytestmark = [pytest.mark.pg]

SCHEMA = [
    "CREATE TABLE p (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k)",
    "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)",
    "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20) PARTITION BY RANGE (k)",
    "CREATE TABLE p2a PARTITION OF p2 FOR VALUES FROM (10) TO (20)",
    "CREATE TABLE plain (id int PRIMARY KEY)",
    "INSERT INTO p VALUES (1, 1, 'a'), (2, 15, 'b')",
    "INSERT INTO plain VALUES (1)",
]
SNAPSHOT = [
    ("ev.public.p", {"id": 1, "k": 1}, "first"),
    ("ev.public.p", {"id": 2, "k": 15}, "last_in_data_collection"),
    ("ev.public.p1", {"id": 1, "k": 1}, "last_in_data_collection"),
    ("ev.public.p2", {"id": 2, "k": 15}, "last_in_data_collection"),
    ("ev.public.p2a", {"id": 2, "k": 15}, "last_in_data_collection"),
    ("ev.public.plain", {"id": 1}, "last"),
]
ENV = {"CDCD_PROVIDE_TRANSACTION_METADATA": "true"}


def summary(line: dict[str, Any]) -> tuple[Any, ...]:
    payload = line["value"]["payload"]
    if line["topic"] == "ev.transaction":
        return (line["topic"], payload["status"], payload["event_count"],
                payload["data_collections"] and sorted((d["data_collection"], d["event_count"])
                                                       for d in payload["data_collections"]))
    return (line["topic"], line["key"]["payload"], payload["source"]["snapshot"])


def run_workload(pg_db: Any, cdcd_procs: list[CdcdProcess], env: dict[str, str]) -> list[tuple[Any, ...]]:
    for statement in SCHEMA:
        pg_db.execute(statement)
    run = StdoutRun(cdcd_procs, pg_db, env={**ENV, **env})
    pg_db.execute("BEGIN; INSERT INTO p VALUES (3, 3, 'c'), (4, 14, 'd'); INSERT INTO plain VALUES (2); COMMIT")
    lines = run.wait(len(SNAPSHOT) + 5)
    run.stop()
    return [summary(line) for line in lines]


def test_via_partition_root_streams_on_the_root_topic(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    events = run_workload(pg_db, cdcd_procs, {"CDCD_PUBLISH_VIA_PARTITION_ROOT": "true"})
    assert pg_db.execute("SELECT pubviaroot, puballtables FROM pg_publication WHERE pubname = 'cdcd'") == [
        (True, True)]
    assert events == SNAPSHOT + [
        ("ev.transaction", "BEGIN", None, None),
        ("ev.public.p", {"id": 3, "k": 3}, "false"),
        ("ev.public.p", {"id": 4, "k": 14}, "false"),
        ("ev.public.plain", {"id": 2}, "false"),
        ("ev.transaction", "END", 3, [("public.p", 2), ("public.plain", 1)]),
    ]


def test_without_it_changes_stream_on_the_leaf_partitions(pg_db: Any, cdcd_procs: list[CdcdProcess]) -> None:
    events = run_workload(pg_db, cdcd_procs, {})
    assert pg_db.execute("SELECT pubviaroot FROM pg_publication WHERE pubname = 'cdcd'") == [(False,)]
    assert events == SNAPSHOT + [
        ("ev.transaction", "BEGIN", None, None),
        ("ev.public.p1", {"id": 3, "k": 3}, "false"),
        ("ev.public.p2a", {"id": 4, "k": 14}, "false"),
        ("ev.public.plain", {"id": 2}, "false"),
        ("ev.transaction", "END", 3, [("public.p1", 1), ("public.p2a", 1), ("public.plain", 1)]),
    ]


def test_snapshot_reads_the_partition_trees_of_the_publication_only(pg_db: Any,
                                                                     cdcd_procs: list[CdcdProcess]) -> None:
    for statement in [*SCHEMA, "CREATE TABLE other (id int PRIMARY KEY)", "INSERT INTO other VALUES (1)"]:
        pg_db.execute(statement)
    pg_db.execute("CREATE PUBLICATION cdcd FOR TABLE p, plain")
    run = StdoutRun(cdcd_procs, pg_db)
    lines = run.wait(len(SNAPSHOT))
    run.stop()
    # Debezium would read public.other too, then never stream it (docs/debezium-compatibility.md).
    assert [summary(line) for line in lines] == SNAPSHOT
