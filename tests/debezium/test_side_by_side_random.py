"""Real Debezium 3.6.3 and cdcd on seeded random workloads (``tests/random_workload.py``).

Each seed is one `Scenario`: random tables (types, keys, replica identities, defaults),
snapshot rows and streamed transactions (multi-row inserts, updates of values and keys,
deletes, TOASTed values, edge values, ADD/DROP COLUMN, TRUNCATE) under randomly chosen
connector properties; every table's topic is compared as in ``test_debezium_side_by_side``.

CI runs `CI_SEEDS`.  More seeds: ``SIDE_BY_SIDE_SEEDS=100-119,7 python -m pytest -q
tests/debezium/test_side_by_side_random.py`` (with ``SIDE_BY_SIDE_DUMP=/dir`` to keep the
records, and ``python -m tests.random_workload 7`` to print seed 7's SQL).  A difference a
seed finds is minimised into a fixed scenario of ``tests/debezium_scenarios.py``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.debezium.test_debezium_side_by_side import _result, check_case, check_topics
from tests.debezium_scenarios import Scenario
from tests.fix_debezium import ScenarioResult
from tests.fix_pg import PgCluster
from tests.random_workload import generate, parse_seeds

SEEDS_ENV = "SIDE_BY_SIDE_SEEDS"  # e.g. "100-119" or "3,7,20-25": these seeds instead of CI_SEEDS
# 22 and 69 found differences now fixed (message-key change on a primary-key update, interval seconds in
# string mode); the others cover most column kinds and random properties; a failing seed is minimised into
# debezium_scenarios
CI_SEEDS = (22, 30, 41, 62, 69, 171, 174)
# seed -> case -> the one-line deviation a seed still shows (its minimal form is a fixed scenario)
KNOWN: dict[int, dict[str, str]] = {
    13: {"public.t1": "column.truncate.to.1.chars cuts a surrogate pair: Debezium emits the lone high surrogate, "
                      "cdcd drops it (deliberate, docs/debezium-compatibility.md)"},
}


def seeds() -> list[int]:
    text = os.environ.get(SEEDS_ENV, "").strip()
    return parse_seeds(text) if text else list(CI_SEEDS)


def scenario_for(seed: int) -> Scenario:
    workload = generate(seed)
    metadata = workload.properties.get("provide.transaction.metadata") == "true"
    return Scenario(
        name=f"random_{seed}",
        properties=workload.properties,
        setup=workload.setup,
        workload=tuple(workload.transactions),
        tables=tuple(workload.tables),
        extra_topics=("transaction",) if metadata else (),
        xfail=dict(KNOWN.get(seed, {})),
    )


def _cases() -> list[Any]:
    out = []
    for seed in seeds():
        scenario = scenario_for(seed)
        for case in scenario.cases():
            reason = scenario.xfail.get(case)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(scenario, case, id=f"{scenario.name}-{case}", marks=marks))
    return out


@pytest.mark.pg
@pytest.mark.parametrize(("scenario", "case"), _cases())
def test_random_side_by_side(scenario: Scenario, case: str, pg_cluster: PgCluster, jvm: None,
                             debezium_side_by_side_cache: dict[str, ScenarioResult], tmp_path_factory: Any) -> None:
    check_case(scenario, case, _result(scenario, pg_cluster, debezium_side_by_side_cache, tmp_path_factory))


@pytest.mark.pg
@pytest.mark.parametrize("scenario", [pytest.param(scenario_for(s), id=f"random_{s}") for s in seeds()])
def test_random_same_topics(scenario: Scenario, pg_cluster: PgCluster, jvm: None,
                            debezium_side_by_side_cache: dict[str, ScenarioResult], tmp_path_factory: Any) -> None:
    check_topics(scenario, _result(scenario, pg_cluster, debezium_side_by_side_cache, tmp_path_factory))


def test_generator_is_deterministic() -> None:
    """A seed always yields the same SQL and properties (the point of a seed)."""
    for seed in (1, 2, 3, 12345):
        assert generate(seed) == generate(seed)
    assert generate(1).setup != generate(2).setup
