"""RelationState: encoders built once per relation description, and one invalidation for every listener."""

from __future__ import annotations

from typing import Any

from cdcd import config as config_mod
from cdcd.debezium.options import envelope_options
from cdcd.decode.messages import Relation, RelationColumn
from cdcd.ops.metrics import Metrics
from cdcd.session.relations import RelationState
from cdcd.source.filters import TableFilter
from tests.fake_stream import FakeCatalog

ORDERS = Relation(16400, "public", "orders", "d", (RelationColumn(True, "id", 23, -1),
                                                   RelationColumn(False, "note", 25, -1)))
OUTBOX = Relation(16401, "public", "outbox", "d", (RelationColumn(True, "id", 23, -1),))
AUDIT = Relation(16402, "audit", "log", "d", (RelationColumn(True, "id", 23, -1),))
SIGNALS = Relation(16403, "public", "dbz_signal", "d", (RelationColumn(True, "id", 25, -1),))


class Listener:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.signal_table = "public.dbz_signal"

    def relation_changed(self, oid: int) -> None:
        self.calls.append(("relation_changed", oid))

    def schema_changed(self, oid: int) -> None:
        self.calls.append(("schema_changed", oid))


def state(toast: Any = None, incremental: Any = None) -> tuple[RelationState, FakeCatalog, Metrics]:
    cfg = config_mod.load(env={}, overrides={"dsn": "host=x", "sink": "stdout", "topic_prefix": "shop"})
    catalog = FakeCatalog()
    metrics = Metrics(process_metrics=False)
    relations = RelationState(catalog.table_info, envelope_options(cfg, "shop"), TableFilter((), ("audit\\..*",)),
                              lambda name: name == "public.outbox", metrics, toast, incremental)
    return relations, catalog, metrics


def test_an_encoder_is_built_once_per_relation_description() -> None:
    relations, catalog, _ = state()
    first = relations.encoder(ORDERS)
    assert first is not None and first.topic == "shop.public.orders"
    assert relations.encoder(ORDERS) is first
    assert catalog.looked_up == ["orders"]
    relations.described(ORDERS)  # a Relation message: rebuilt from the catalog on the next row
    assert relations.encoder(ORDERS) is not first
    assert catalog.looked_up == ["orders", "orders"]


def test_excluded_and_outbox_tables_have_no_encoder() -> None:
    relations, catalog, _ = state()
    assert relations.encoder(AUDIT) is None
    assert relations.encoder(OUTBOX) is None
    assert relations.outbox_tables[OUTBOX.oid].name == "outbox"
    assert catalog.looked_up == ["outbox"], "an excluded table is never looked up"
    relations.invalidate(OUTBOX.oid)
    assert OUTBOX.oid not in relations.outbox_tables


def test_a_relation_message_resets_the_incremental_snapshot_key_plan_but_keeps_toast_values() -> None:
    toast, incremental = Listener(), Listener()
    relations, _, _ = state(toast, incremental)
    relations.described(ORDERS)
    assert incremental.calls == [("relation_changed", ORDERS.oid)]
    assert toast.calls == [], "the cached values are still the table's values"


def test_a_ddl_event_also_makes_the_toast_cache_forget_the_tables_values() -> None:
    toast, incremental = Listener(), Listener()
    relations, _, _ = state(toast, incremental)
    relations.encoder(ORDERS)
    relations.invalidate(ORDERS.oid, values_rewritten=True)
    assert incremental.calls == [("relation_changed", ORDERS.oid)]
    assert toast.calls == [("schema_changed", ORDERS.oid)]
    assert ORDERS.oid not in relations.encoders


def test_the_signal_tables_oid_is_learned_from_its_relation_message() -> None:
    relations, _, _ = state(incremental=Listener())
    relations.described(ORDERS)
    assert relations.signal_oid is None
    relations.described(SIGNALS)
    assert relations.signal_oid == SIGNALS.oid


def test_events_are_counted_per_table_and_op_across_invalidations() -> None:
    relations, _, metrics = state()
    relations.counted(ORDERS, "create")
    relations.counted(ORDERS, "create")
    relations.invalidate(ORDERS.oid)
    relations.counted(ORDERS, "delete")
    # Published in one step per transaction and status update, not per event.
    assert not any(line.endswith(" 2.0") for line in metrics_text(metrics).splitlines() if 'op="c"' in line)
    relations.flush_counts()
    exposition = metrics_text(metrics)
    assert 'table="public.orders"' in exposition
    assert any(line.endswith(" 2.0") for line in exposition.splitlines() if 'op="c"' in line)
    assert any(line.endswith(" 1.0") for line in exposition.splitlines() if 'op="d"' in line)


def metrics_text(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()
