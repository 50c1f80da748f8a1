"""Real Debezium 3.6.3 and cdcd on the same databases and workloads: same keys, same values.

How to run and add scenarios: see ``tests/fix_debezium.py`` (harness) and
``tests/debezium_scenarios.py`` (scenarios).  ``SIDE_BY_SIDE_DUMP=/dir`` writes every
scenario's records (``<scenario>.debezium.jsonl``, ``<scenario>.cdcd.jsonl``) for a closer look.  One Debezium engine run and one cdcd run per
scenario serve every table of it; each table is its own test case.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.debezium_scenarios import SCENARIOS, SYNC, Scenario
from tests.fix_debezium import Emitted, ScenarioResult, diff_topic, side_by_side
from tests.fix_pg import DB_PREFIX, PgCluster, PgDatabase

pytestmark = [pytest.mark.pg]

_lock = threading.Lock()
DUMP_ENV = "SIDE_BY_SIDE_DUMP"  # not CDCD_*: cdcd warns about unknown CDCD_ variables  # a directory: each scenario's records, one JSON line each


def _dump(name: str, outputs: Any) -> None:
    target = os.environ.get(DUMP_ENV, "").strip()
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    for who in ("debezium", "cdcd"):
        with open(Path(target) / f"{name}.{who}.jsonl", "w") as out:
            for r in getattr(outputs, who):
                out.write(json.dumps({"topic": r.topic, "key": r.key, "value": r.value}) + "\n")
    (Path(target) / f"{name}.cdcd.log").write_text(outputs.cdcd_log)


def _run(scenario: Scenario, cluster: PgCluster, cache: dict[str, ScenarioResult], tmp_path_factory: Any) -> ScenarioResult:
    with _lock:
        key = _key(scenario, cluster)
        if key in cache:
            return cache[key]
        result = ScenarioResult()
        cache[key] = result
        db = PgDatabase(cluster, f"{DB_PREFIX}sbs_{scenario.name}")
        db.drop()
        db.create()
        try:
            with db.connect() as conn:
                conn.execute(scenario.setup)

            def workload(sync: Callable[[], None]) -> None:
                with psycopg.connect(db.dsn, autocommit=True) as conn:
                    for statement in scenario.workload:
                        if statement == SYNC:
                            sync()  # both connectors caught up
                        else:
                            conn.execute(statement)  # one statement string, one transaction

            def until(dbz: list[Emitted], ours: list[Emitted]) -> bool:
                return all(sum(r.topic == scenario.topic(t) for r in records) >= n
                           for t, n in scenario.expect.items() for records in (dbz, ours))

            params = {"host": cluster.host, "port": cluster.port, "user": cluster.user, "dbname": db.dbname}
            result.outputs = side_by_side(params, db.dsn, scenario.properties, workload,
                                          tmp_path_factory.mktemp(f"sbs_{scenario.name}"),
                                          until=until if scenario.expect else None)
            _dump(scenario.name, result.outputs)
        except BaseException as exc:  # noqa: BLE001 - every case of the scenario reports it
            result.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            db.drop()
        return result


def _cases() -> list[Any]:
    out = []
    for scenario in SCENARIOS:
        for case in scenario.cases():
            reason = scenario.broken or scenario.xfail.get(case)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(scenario, case, id=f"{scenario.name}-{case}", marks=marks))
    return out


def _topic_cases() -> list[Any]:
    return [pytest.param(s, id=s.name, marks=[pytest.mark.xfail(strict=True, reason=s.broken or s.topics_xfail)]
                         if s.broken or s.topics_xfail else []) for s in SCENARIOS]


def _key(scenario: Scenario, cluster: PgCluster) -> str:
    """One run per scenario and cluster (``--pg-versions`` runs the suite on several)."""
    return f"PostgreSQL {cluster.version} ({cluster.port})/{scenario.name}"


def _result(scenario: Scenario, pg_cluster: PgCluster, cache: dict[str, ScenarioResult], factory: Any) -> Any:
    key = _key(scenario, pg_cluster)
    if key in cache and cache[key].error:
        pytest.fail(f"scenario {scenario.name} did not run: {cache[key].error}", pytrace=False)
    result = _run(scenario, pg_cluster, cache, factory)
    assert result.outputs is not None
    return result


@pytest.mark.parametrize(("scenario", "case"), _cases())
def test_side_by_side(scenario: Scenario, case: str, pg_cluster: PgCluster, jvm: None,
                      debezium_side_by_side_cache: dict[str, ScenarioResult], tmp_path_factory: Any) -> None:
    result = _result(scenario, pg_cluster, debezium_side_by_side_cache, tmp_path_factory)
    check_case(scenario, case, result)


def check_case(scenario: Scenario, case: str, result: ScenarioResult) -> None:
    """One table's (or extra topic's) records of a scenario run: the same from both connectors."""
    assert result.outputs is not None
    topic = scenario.topic(case)
    dbz, ours = result.outputs.topic(topic)
    result.compared[case] = len(dbz)
    if not dbz and not ours:
        assert case in scenario.empty, f"neither Debezium nor cdcd emitted anything on {topic}: a broken scenario"
    lines = diff_topic(topic, dbz, ours)
    rejected = result.outputs.rejected.get(topic, [])
    if rejected:
        lines.insert(0, f"Kafka Connect rejected {len(rejected)} of cdcd's records on {topic}; first: {rejected[0]}")
    assert not lines, f"{len(dbz)} Debezium / {len(ours)} cdcd records on {topic}:\n" + "\n".join(lines)


@pytest.mark.parametrize("scenario", _topic_cases())
def test_same_topics(scenario: Scenario, pg_cluster: PgCluster, jvm: None,
                     debezium_side_by_side_cache: dict[str, ScenarioResult], tmp_path_factory: Any) -> None:
    result = _result(scenario, pg_cluster, debezium_side_by_side_cache, tmp_path_factory)
    check_topics(scenario, result)


def check_topics(scenario: Scenario, result: ScenarioResult) -> None:
    """Both connectors of a scenario run wrote to the same topics."""
    assert result.outputs is not None
    dbz, ours = result.outputs.topics()
    prefix = re.escape(scenario.properties["topic.prefix"])
    signal = scenario.properties.get("signal.data.collection")
    ignore = {scenario.topic(signal)} if signal else set()
    assert dbz - ignore == ours - ignore, (f"topics only from Debezium: {sorted(dbz - ours)}; "
                                           f"only from cdcd: {sorted(ours - dbz)} (prefix {prefix})")
