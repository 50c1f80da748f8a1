"""Java behaviours that leak into Debezium's output and that we must reproduce.

``java.util.HashMap`` iteration order decides the order of keys in hstore JSON
and of ``data_collections`` in transaction END events; it depends only on
``String.hashCode`` and the table capacity, so it can be computed exactly.
"""

from __future__ import annotations

from typing import Iterable, TypeVar

T = TypeVar("T")


def string_hash(s: str) -> int:
    """``String.hashCode()`` over UTF-16 code units, as an unsigned 32-bit int."""
    h = 0
    data = s.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] | data[i + 1] << 8)) & 0xFFFFFFFF
    return h


def hashmap_order(keys: Iterable[str]) -> list[str]:
    """The iteration order of a ``HashMap<String, ?>`` filled with ``keys`` in this order.

    Buckets are visited in index order; within a bucket, entries keep insertion
    order (resizes split buckets without reordering). Treeified buckets (8+
    colliding keys) are not modelled.
    """
    unique = list(dict.fromkeys(keys))
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2
    mask = capacity - 1

    def bucket(item: tuple[int, str]) -> tuple[int, int]:
        h = string_hash(item[1])
        return ((h ^ (h >> 16)) & mask, item[0])

    return [k for _, k in sorted(enumerate(unique), key=bucket)]
