"""Debezium's table include/exclude lists, and the order snapshots read tables in."""

from __future__ import annotations

from cdcd.source.filters import TableFilter

TABLES = ["public.b", "public.a", "s2.z", "public.harness", "s2.a"]


def test_include_list_is_a_case_insensitive_full_match() -> None:
    accept = TableFilter(("public\\.A", "s2\\..*"), ())
    assert [t for t in TABLES if accept(t)] == ["public.a", "s2.z", "s2.a"]
    assert not TableFilter(("public\\.a",), ())("public.ab")


def test_exclude_list_applies_without_an_include_list() -> None:
    accept = TableFilter((), ("s2\\..*",))
    assert [t for t in TABLES if accept(t)] == ["public.b", "public.a", "public.harness"]


def test_snapshot_order_without_include_list_is_by_name() -> None:
    assert TableFilter((), ()).snapshot_order(TABLES) == sorted(TABLES)


def test_snapshot_order_follows_the_include_list_then_names() -> None:
    accept = TableFilter(("s2\\..*", "public\\.harness", "public\\..*"), ())
    assert accept.snapshot_order(TABLES) == ["s2.a", "s2.z", "public.harness", "public.a", "public.b"]


def test_snapshot_order_keeps_names_no_pattern_matches_last() -> None:
    accept = TableFilter(("public\\.b",), ())
    assert accept.snapshot_order(["public.signal", "public.b", "public.a"]) == ["public.b", "public.a",
                                                                                   "public.signal"]
