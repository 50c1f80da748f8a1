"""Debezium's signals: rows written to the signal table, read back from the stream.

The table named by ``signal.data.collection`` has Debezium's three columns,
read by position as Debezium reads them: an id, a type and a JSON data
string. Because signals travel through the WAL like any change, they take
effect at their place in the stream and exactly once: a signal in a
transaction that Kafka already holds is skipped with it on a restart.

The same table carries the incremental snapshot's watermarks, which cdcd
writes itself (``snapshot-window-open`` / ``-close``); see
``cdcd.snapshot.incremental``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson
from psycopg import sql

from cdcd.config import Config
from cdcd.decode.messages import TupleData
from cdcd.errors import SourceError
from cdcd.source.catalog import Catalog

EXECUTE_SNAPSHOT: Final = "execute-snapshot"
STOP_SNAPSHOT: Final = "stop-snapshot"
PAUSE_SNAPSHOT: Final = "pause-snapshot"
RESUME_SNAPSHOT: Final = "resume-snapshot"
LOG: Final = "log"
WINDOW_OPEN: Final = "snapshot-window-open"
WINDOW_CLOSE: Final = "snapshot-window-close"


class SignalError(ValueError):
    """A signal that cannot be carried out; it is logged and ignored, the stream goes on."""


@dataclass(frozen=True, slots=True)
class Signal:
    id: str
    type: str
    data: str | None

    def document(self) -> dict[str, Any]:
        """``data`` as a JSON object ({} when empty)."""
        if self.data is None or not self.data.strip():
            return {}
        try:
            doc = orjson.loads(self.data)
        except orjson.JSONDecodeError as exc:
            raise SignalError(f"signal {self.id!r}: data is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise SignalError(f"signal {self.id!r}: data must be a JSON object")
        return doc


def signal_from_row(values: TupleData) -> Signal | None:
    """The signal in a signal-table row (id, type, data by position); None when it is not one."""
    if len(values) < 2:
        return None
    sid, kind = values[0], values[1]
    data = values[2] if len(values) > 2 else None
    if not isinstance(sid, str) or not isinstance(kind, str):
        return None
    return Signal(sid, kind, data if isinstance(data, str) else None)


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """An ``execute-snapshot`` signal's data."""

    data_collections: tuple[str, ...]
    """Regexes matched in full against ``schema.table``, as Debezium expands them."""
    kind: str
    """``incremental`` or ``blocking``."""
    conditions: tuple[tuple[str, str], ...] = ()
    """``(data-collection regex, SQL filter)`` pairs from ``additional-conditions``."""
    surrogate_key: str | None = None

    def condition_for(self, table: str) -> str | None:
        for pattern, condition in self.conditions:
            if pattern == table or re.fullmatch(pattern, table):
                return condition
        return None


def parse_snapshot_request(signal: Signal) -> SnapshotRequest:
    doc = signal.document()
    collections = doc.get("data-collections")
    if (not isinstance(collections, list) or not collections
            or not all(isinstance(c, str) and c.strip() for c in collections)):
        raise SignalError(f"signal {signal.id!r}: execute-snapshot needs \"data-collections\": a non-empty list "
                          "of schema.table names or regexes")
    kind = str(doc.get("type") or "incremental").lower()
    if kind not in ("incremental", "blocking"):
        raise SignalError(f"signal {signal.id!r}: snapshot type {kind!r} is not incremental or blocking")
    conditions: list[tuple[str, str]] = []
    for item in doc.get("additional-conditions") or ():
        if not isinstance(item, dict) or not isinstance(item.get("data-collection"), str) \
                or not isinstance(item.get("filter"), str):
            raise SignalError(f"signal {signal.id!r}: each additional condition needs \"data-collection\" and "
                              "\"filter\" strings")
        conditions.append((item["data-collection"].strip(), item["filter"]))
    legacy = doc.get("additional-condition")  # Debezium 1.x/2.0: one filter for every collection
    if isinstance(legacy, str) and legacy.strip():
        conditions.extend((c.strip(), legacy) for c in collections)
    surrogate = doc.get("surrogate-key")
    return SnapshotRequest(tuple(c.strip() for c in collections), kind, tuple(conditions),
                           surrogate if isinstance(surrogate, str) and surrogate else None)


def parse_stop_request(signal: Signal) -> tuple[str, ...]:
    """The collections a ``stop-snapshot`` names; () stops the whole snapshot."""
    collections = signal.document().get("data-collections") or []
    if not isinstance(collections, list) or not all(isinstance(c, str) for c in collections):
        raise SignalError(f"signal {signal.id!r}: \"data-collections\" must be a list of names")
    return tuple(c.strip() for c in collections if c.strip())


def signal_table_name(qualified: str) -> str:
    """``schema.table`` as configured; an unqualified name is in ``public`` (PostgreSQL's default)."""
    return qualified if "." in qualified else f"public.{qualified}"


def signal_table_identifier(qualified: str) -> sql.Identifier:
    schema, _, table = signal_table_name(qualified).partition(".")
    return sql.Identifier(schema, table)


def check_signal_table(config: Config, catalog: Catalog) -> None:
    """The signal table must exist and be published: its rows are read from the stream."""
    table = signal_table_name(config.signal_data_collection)
    if table not in catalog.tables():
        raise SourceError(
            f"the signal table {table} (signal.data.collection) does not exist: CREATE TABLE {table} "
            "(id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048) NULL)")
    publication = catalog.publication(config.publication_name)
    if publication is not None and table not in publication.tables:
        raise SourceError(
            f"the signal table {table} is not in publication {config.publication_name!r}, so cdcd would never "
            f"see its signals: ALTER PUBLICATION {config.publication_name} ADD TABLE {table}")
