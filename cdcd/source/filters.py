"""Which tables are captured: Debezium's ``table.include.list`` / ``table.exclude.list``."""

from __future__ import annotations

import re
from collections.abc import Iterable


class TableFilter:
    """Debezium's include/exclude lists: case-insensitive full matches on ``schema.table``."""

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self._include = [re.compile(p, re.IGNORECASE) for p in include]
        self._exclude = [re.compile(p, re.IGNORECASE) for p in exclude]

    def __call__(self, qualified_name: str) -> bool:
        if self._include:
            return any(p.fullmatch(qualified_name) for p in self._include)
        return not any(p.fullmatch(qualified_name) for p in self._exclude)

    def snapshot_order(self, names: Iterable[str]) -> list[str]:
        """The order Debezium snapshots tables in: by the first include pattern each matches,
        then by name (code point order); without an include list, by name alone.

        It sets which table carries ``source.snapshot`` ``first`` and ``last``.
        """
        ranked = sorted(names)
        if not self._include:
            return ranked
        ordered = {name: None for p in self._include for name in ranked if p.fullmatch(name)}
        return [*ordered, *(name for name in ranked if name not in ordered)]
