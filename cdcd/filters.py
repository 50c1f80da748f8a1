"""Which tables are captured: Debezium's ``table.include.list`` / ``table.exclude.list``."""

from __future__ import annotations

import re


class TableFilter:
    """Debezium's include/exclude lists: case-insensitive full matches on ``schema.table``."""

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self._include = [re.compile(p, re.IGNORECASE) for p in include]
        self._exclude = [re.compile(p, re.IGNORECASE) for p in exclude]

    def __call__(self, qualified_name: str) -> bool:
        if self._include:
            return any(p.fullmatch(qualified_name) for p in self._include)
        return not any(p.fullmatch(qualified_name) for p in self._exclude)
