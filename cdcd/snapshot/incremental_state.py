"""An incremental snapshot's progress: what survives a restart, in every offsets record.

``IncrementalState`` travels in the same Kafka transaction as the rows it
counts (``SourceOffset.incremental``), so after a restart the snapshot goes on
with a fresh chunk after the last key Kafka holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class IncrementalState:
    """What survives a restart: kept in each offsets record (``SourceOffset.incremental``)."""

    tables: list[str] = field(default_factory=list)
    """``schema.table`` still to read, the current one first."""
    conditions: dict[str, str] = field(default_factory=dict)
    """``additional-conditions`` per table: a SQL filter."""
    last_key: list[str | None] | None = None
    """Key of the last row sent of the current table, as text; None before its first chunk."""
    max_key: list[str | None] | None = None
    """The current table's largest key when its scan began: rows inserted later are streamed anyway."""
    paused: bool = False
    correlation_id: str | None = None
    """The id of the ``execute-snapshot`` signal that started it."""

    @property
    def running(self) -> bool:
        return bool(self.tables)

    def next_table(self) -> None:
        if self.tables:
            done = self.tables.pop(0)
            self.conditions.pop(done, None)
        self.last_key = self.max_key = None
        if not self.tables:
            self.paused = False
            self.correlation_id = None

    def to_doc(self) -> dict[str, Any] | None:
        if not self.running:
            return None
        return {"tables": self.tables, "conditions": self.conditions, "last_key": self.last_key,
                "max_key": self.max_key, "paused": self.paused, "correlation_id": self.correlation_id}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> IncrementalState:
        if not doc:
            return cls()
        return cls(tables=[str(t) for t in doc.get("tables") or ()],
                   conditions={str(k): str(v) for k, v in (doc.get("conditions") or {}).items()},
                   last_key=doc.get("last_key"), max_key=doc.get("max_key"), paused=bool(doc.get("paused")),
                   correlation_id=doc.get("correlation_id"))
