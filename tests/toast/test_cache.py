"""The TOAST cache without PostgreSQL: the SQLite store and the filler's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from cdcd.decode.messages import UNCHANGED_TOAST, Delete, Insert, Relation, RelationColumn, Update
from cdcd.toast.cache import CacheFiller
from cdcd.toast.metrics import ToastMetrics
from cdcd.toast.store import ToastStore, default_path

U = UNCHANGED_TOAST
BIG = "x" * 3000
BIG2 = "y" * 3000
REL = Relation(oid=100, namespace="public", name="docs", replica_identity="d", columns=(
    RelationColumn(True, "id", 23, -1), RelationColumn(False, "body", 25, -1), RelationColumn(False, "n", 23, -1)))


def filler(path: Path, *, max_bytes: int = 1 << 30, owner: str = "o", start: int = 0) -> CacheFiller:
    store = ToastStore(path, max_bytes)
    store.begin(owner, start)
    return CacheFiller(store, None, 2000, ToastMetrics.of(CollectorRegistry()))  # type: ignore[arg-type]


def value(registry_metric: Any) -> float:
    return float(registry_metric._value.get())


def filled(f: CacheFiller, msg: Update, lsn: int) -> tuple[Any, ...]:
    out = f.change(msg, lsn)
    assert isinstance(out, Update)
    return out.new


def upd(new: tuple[Any, ...], old: tuple[Any, ...] | None = None, rel: Relation = REL) -> Update:
    return Update(rel, "K" if old is not None else None, old, new)


def test_an_unchanged_value_comes_from_the_cache(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", BIG, "0")), 10)
    f.commit(11)
    assert filled(f, upd(("1", U, "1")), 20) == ("1", BIG, "1")
    assert value(f.metrics.hits) == 1 and value(f.metrics.misses) == 0
    assert filled(f, upd(("2", U, "1")), 21) == ("2", U, "1")  # never seen: miss, placeholder stays
    assert value(f.metrics.misses) == 1


def test_small_values_are_not_stored_and_invalidate_a_stale_entry(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", "short", "0")), 10)
    assert f.store.row(100, '["1"]') == {}
    f.change(Insert(REL, ("2", BIG, "0")), 11)
    f.change(upd(("2", "now small", "1")), 12)  # the big value is gone from the row
    assert filled(f, upd(("2", U, "2")), 13) == ("2", U, "2")


def test_within_one_transaction_and_across_updates(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", BIG, "0")), 10)
    assert filled(f, upd(("1", U, "1")), 11)[1] == BIG  # not committed yet: still visible
    f.change(upd(("1", BIG2, "2")), 12)
    assert filled(f, upd(("1", U, "3")), 13)[1] == BIG2


def test_delete_truncate_and_schema_change_forget(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", BIG, "0")), 10)
    f.change(Insert(REL, ("2", BIG, "0")), 11)
    f.change(Delete(REL, "K", ("1", None, None)), 12)
    assert filled(f, upd(("1", U, "1")), 13)[1] is U
    assert filled(f, upd(("2", U, "1")), 14)[1] == BIG
    f.truncate(REL)
    assert filled(f, upd(("2", U, "1")), 15)[1] is U
    f.change(Insert(REL, ("3", BIG, "0")), 16)
    f.schema_changed(100)
    assert filled(f, upd(("3", U, "1")), 17)[1] is U


def test_a_key_change_moves_the_row(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", BIG, "0")), 10)
    assert filled(f, upd(("5", U, "0"), old=("1", None, None)), 11)[1] == BIG
    assert filled(f, upd(("5", U, "1")), 12)[1] == BIG
    assert filled(f, upd(("1", U, "1")), 13)[1] is U


def test_replayed_changes_never_read_a_later_value(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", BIG2, "0")), 500)
    assert filled(f, upd(("1", U, "1")), 400)[1] is U  # written at 500: not this change's value


def test_a_type_change_is_a_miss(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", BIG, "0")), 10)
    cols = list(REL.columns)
    cols[1] = RelationColumn(False, "body", 3802, -1)  # now jsonb
    rel2 = Relation(100, "public", "docs", "d", tuple(cols))
    assert filled(f, upd(("1", U, "1"), rel=rel2), 11)[1] is U


def test_key_columns_change_forgets_the_table(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", BIG, "7")), 10)
    rekeyed = Relation(100, "public", "docs", "i", (
        RelationColumn(False, "id", 23, -1), RelationColumn(False, "body", 25, -1), RelationColumn(True, "n", 23, -1)))
    assert filled(f, upd(("1", U, "7"), rel=rekeyed), 11)[1] is U
    assert f.store.row(100, '["1"]') == {}


def test_tables_without_a_key_are_left_alone(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    keyless = Relation(101, "public", "log", "d", (RelationColumn(False, "body", 25, -1),))
    f.change(Insert(keyless, (BIG,)), 10)
    assert filled(f, Update(keyless, None, None, (U,)), 11) == (U,)


def test_survives_a_restart_and_a_crash_loses_only_uncommitted_writes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    f = filler(path, start=5)
    f.change(Insert(REL, ("1", BIG, "0")), 10)
    f.commit(11)
    f.change(Insert(REL, ("2", BIG, "0")), 12)  # no COMMIT seen: a crash now
    f.store.close()
    g = filler(path, start=11)
    assert filled(g, upd(("1", U, "1")), 20)[1] == BIG
    assert filled(g, upd(("2", U, "1")), 21)[1] is U


def test_a_gap_or_another_owner_empties_it(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    f = filler(path, start=5)
    f.change(Insert(REL, ("1", BIG, "0")), 10)
    f.on_position(50)
    f.store.close()
    store = ToastStore(path, 1 << 30)
    assert store.begin("o", 50) is None and store.row(100, '["1"]')
    assert store.begin("o", 60) is not None and store.row(100, '["1"]') == {}  # started past what it saw
    store.put(100, '["1"]', "body", 25, 61, BIG)
    store.commit(70)
    assert store.begin("other", 70) is not None and store.row(100, '["1"]') == {}
    store.close()


def test_eviction_takes_the_least_recently_used(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite", max_bytes=7000)
    for i in (1, 2):
        f.change(Insert(REL, (str(i), BIG, "0")), 10 + i)
    f.commit(13)
    assert filled(f, upd(("1", U, "1")), 14)[1] == BIG  # row 1 is now the most recently used
    f.change(Insert(REL, ("3", BIG, "0")), 15)
    f.commit(16)
    assert f.store.held_bytes <= 7000 and value(f.metrics.evictions) >= 1
    assert filled(f, upd(("2", U, "1")), 17)[1] is U
    assert filled(f, upd(("1", U, "2")), 18)[1] == BIG
    assert filled(f, upd(("3", U, "1")), 19)[1] == BIG


def test_bytea_and_non_ascii_sizes(tmp_path: Path) -> None:
    f = filler(tmp_path / "c.sqlite")
    f.change(Insert(REL, ("1", "é" * 1500, "0")), 10)  # 1500 characters, 3000 bytes: under min.bytes by length
    f.change(Insert(REL, ("2", "é" * 2000, "0")), 11)
    f.commit(12)
    assert f.store.held_bytes == 4000


def test_default_path_uses_the_state_directory() -> None:
    assert default_path("s", {"STATE_DIRECTORY": "/var/lib/cdcd:/other"}) == Path("/var/lib/cdcd/cdcd-toast-s.sqlite")
    assert default_path("s", {}) == Path("cdcd-toast-s.sqlite")


def test_metrics_are_registered_once_per_registry() -> None:
    registry = CollectorRegistry()
    assert ToastMetrics.of(registry) is ToastMetrics.of(registry)
    assert ToastMetrics.of(CollectorRegistry()) is not ToastMetrics.of(registry)


def test_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    from cdcd.errors import ConfigError

    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match="toast.cache.path"):
        ToastStore(tmp_path / "dir", 1000)
