"""Debezium's ``source.snapshot`` markers for the rows of an initial snapshot.

Debezium (``RelationalSnapshotChangeEventSource.setSnapshotMarker`` plus the
buffering snapshot receiver of ``EventDispatcher``) decides each row's marker
from four facts, in this order of precedence:

1. last row of the last table                    → ``last``
2. first row of the first table                  → ``first``
3. last row of its table                         → ``last_in_data_collection``
4. first row of its table                        → ``first_in_data_collection``
5. any other row                                 → ``true``

and finally rewrites the very last record it emits to ``last``: the snapshot
always ends on ``last``, also when the last tables are empty. "First table"
means the first table *in the snapshot's table order*, empty or not, so an
empty first table leaves the snapshot without a ``first`` row (Debezium does
the same). Consequences worth knowing:

- a one-row table in the middle is ``last_in_data_collection`` (3 beats 4);
- a one-table snapshot of two rows is ``first``, ``last``; of one row, ``last``;
- nothing at all is emitted for empty tables.

This module is pure: it needs one row of look-ahead per table and holds one
row back for the final rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, TypeVar

FIRST: Final = "first"
FIRST_IN_DATA_COLLECTION: Final = "first_in_data_collection"
LAST_IN_DATA_COLLECTION: Final = "last_in_data_collection"
LAST: Final = "last"
TRUE: Final = "true"

K = TypeVar("K")
V = TypeVar("V")


def marker(first_in_snapshot: bool, last_in_snapshot: bool, first_in_table: bool, last_in_table: bool) -> str:
    """The marker of one row, before the final rewrite (Debezium's precedence)."""
    if last_in_snapshot:
        return LAST
    if first_in_snapshot:
        return FIRST
    if last_in_table:
        return LAST_IN_DATA_COLLECTION
    if first_in_table:
        return FIRST_IN_DATA_COLLECTION
    return TRUE


def flag_rows(tables: Iterable[tuple[K, Iterable[V]]], table_count: int) -> Iterator[tuple[K, V, str]]:
    """``(table, row, marker)`` for every row, tables in the given order.

    ``tables`` may be lazy (each table's rows are consumed before the next
    table is asked for); ``table_count`` says which table is the last one.
    """
    held: tuple[K, V, str] | None = None
    for index, (table, rows) in enumerate(tables):
        first_table = index == 0
        last_table = index == table_count - 1
        it = iter(rows)
        try:
            current = next(it)
        except StopIteration:
            continue
        first = True
        while True:
            try:
                following = next(it)
                last = False
            except StopIteration:
                last = True
            if held is not None:
                yield held
            held = (table, current, marker(first_table and first, last_table and last, first, last))
            if last:
                break
            first = False
            current = following
    if held is not None:
        yield held[0], held[1], LAST
