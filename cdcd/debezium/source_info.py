"""Where an event comes from: ``SourceInfo`` and the ``source`` block every event carries.

Change events, logical-message events and schema change events share one
``source`` block (Debezium's ``io.debezium.connector.postgresql.Source``)::

    {"version": "3.6.3.Final", "connector": "postgresql", "name": "golden",
     "ts_ms": 1795547161012, "snapshot": "false", "db": "golden",
     "sequence": "[\\"162789640\\",\\"162789640\\"]", "ts_us": 1795547161012799,
     "ts_ns": 1795547161012799000, "schema": "public", "table": "order_lines",
     "txId": 1771, "lsn": 162789640, "xmin": null, "origin": null, "origin_lsn": null}

``sequence`` is ``[last_commit_lsn, lsn]`` as a JSON string and ``ts_*`` are the
commit time. ``SourceBlock`` formats it directly (the same JSON as dumping the
dict, a third less time), with what is fixed per connector and per table
formatted once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import orjson

from cdcd.debezium.connect_json import field

SOURCE: Final = "source"
CONNECTOR: Final = "postgresql"

SOURCE_SCHEMA: Final[dict[str, Any]] = {
    "type": "struct",
    "fields": [
        field("string", False, "version"), field("string", False, "connector"), field("string", False, "name"),
        field("int64", False, "ts_ms"),
        field("string", True, "snapshot", name="io.debezium.data.Enum", version=1,
              parameters={"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,"
                                     "incremental"},
              default="false"),
        field("string", False, "db"), field("string", True, "sequence"), field("int64", True, "ts_us"),
        field("int64", True, "ts_ns"), field("string", False, "schema"), field("string", False, "table"),
        field("int64", True, "txId"), field("int64", True, "lsn"), field("int64", True, "xmin"),
        field("string", True, "origin"), field("int64", True, "origin_lsn"),
    ],
    "optional": False, "name": "io.debezium.connector.postgresql.Source", "version": 1, "field": SOURCE,
}

_SNAPSHOT_JSON: Final = {
    s: f'"{s}"' for s in (
        "false", "true", "first", "last", "first_in_data_collection", "last_in_data_collection", "incremental",
    )
}
_NO_ORIGIN: Final = ',"origin":null,"origin_lsn":null}'


@dataclass(slots=True)
class SourceInfo:
    """What the pipeline knows about the event's position."""

    ts_us: int  # commit time, µs since Unix epoch (snapshot: snapshot time)
    txid: int | None
    lsn: int
    last_commit_lsn: int | None  # source.sequence = [str(last_commit_lsn) or null, str(lsn)]
    snapshot: str = "false"  # "false" | "true" | "first" | "last" | "first_in_data_collection" | "last_in_data_collection"
    origin: str | None = None
    origin_lsn: int | None = None
    lsn_null: bool = False
    """Incremental snapshot reads: ``source.lsn`` is null, ``lsn`` only goes into ``sequence`` (as Debezium)."""

    @classmethod
    def read_now(cls, lsn: int, last_commit_lsn: int | None, **extra: Any) -> SourceInfo:
        """An event outside any transaction: ``ts_*`` are the time it is read, ``txId`` is null."""
        return cls(ts_us=time.time_ns() // 1000, txid=None, lsn=lsn, last_commit_lsn=last_commit_lsn, **extra)


def _json(value: str) -> str:
    return orjson.dumps(value).decode()


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


class SourceBlock:
    """Formats the ``source`` block of one connector's events as JSON text."""

    __slots__ = ("_head", "_db")

    def __init__(self, connector_version: str, name: str, database: str) -> None:
        """``name`` is ``topic.prefix`` (``source.name``), ``database`` the database's name (``source.db``)."""
        self._head = f'{{"version":{_json(connector_version)},"connector":"{CONNECTOR}","name":{_json(name)},"ts_ms":'
        self._db = f',"db":{_json(database)},"sequence":'

    @property
    def fixed(self) -> tuple[str, str]:
        """The connector's text up to ``ts_ms`` and from ``db`` to ``sequence`` (the compiled core formats the rest)."""
        return self._head, self._db

    @staticmethod
    def table(schema: str, table: str) -> str:
        """The part naming the event's table (``""`` for events of no table), for ``json``; format it once."""
        return f',"schema":{_json(schema)},"table":{_json(table)},"txId":'

    def json(self, source: SourceInfo, table: str) -> str:
        """The block for ``source``; ``table`` comes from ``SourceBlock.table``."""
        ts_us = source.ts_us
        lsn = source.lsn
        last = source.last_commit_lsn
        snapshot = _SNAPSHOT_JSON.get(source.snapshot) or _json(source.snapshot)
        sequence = f'"[\\"{last}\\",\\"{lsn}\\"]"' if last is not None else f'"[null,\\"{lsn}\\"]"'
        if source.origin is None and source.origin_lsn is None:
            origin = _NO_ORIGIN
        else:
            origin = f',"origin":{orjson.dumps(source.origin).decode()},"origin_lsn":{_json_int(source.origin_lsn)}}}'
        return (
            f'{self._head}{ts_us // 1000},"snapshot":{snapshot}{self._db}{sequence}'
            f',"ts_us":{ts_us},"ts_ns":{ts_us * 1000}{table}{_json_int(source.txid)}'
            f',"lsn":{"null" if source.lsn_null else lsn},"xmin":null{origin}'
        )
